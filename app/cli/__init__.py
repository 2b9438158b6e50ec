"""`flask --app wsgi …` commands: people, tokens, the worker and backups from the shell."""

from __future__ import annotations

import gc
import os
import sys
import time
from datetime import timedelta

import click
from flask import Flask, current_app

from app import services
from app.accounts.people import (
    GLOBAL,
    PeopleError,
    create_token,
    create_user,
    find_user,
    grant_target_role,
    username_problem,
)
from app.config import ROLES, TARGET_ROLES, UnknownTarget
from app.extensions import db
from app.formatting import human_size
from app.services.clients import redis_for, redis_problem
from app.store import audit
from app.store.models import utcnow
from app.store.schema import StoreCheckedCommand, StoreCheckedGroup


def register_commands(app: Flask) -> None:
    """Every command but Flask-Migrate's `db` first checks that the console store is current."""
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(backup_cli)
    app.cli.add_command(targets_cli)
    app.cli.add_command(storage_cli)
    app.cli.add_command(notify_cli)
    app.cli.add_command(worker)
    app.cli.add_command(scheduler)


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


users_cli = StoreCheckedGroup("users", help="Manage the people who may use the console.")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user. The password is read from stdin or prompted for, never taken as an argument."""
    username = username.strip()
    problem = username_problem(username)
    if problem:
        fail(problem)
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        create_user(username, role, password, created_by="cli")
    except PeopleError as exc:
        fail(str(exc))
    click.echo(f"Created {role} {username}.")


@users_cli.command("grant")
@click.argument("username")
@click.option("--target", "target", required=True, help="The target's name (see: targets list).")
@click.option("--role", type=click.Choice([*TARGET_ROLES, GLOBAL]), required=True,
              help="The role on that target; none hides it, global removes the override.")
def users_grant(username: str, target: str, role: str) -> None:
    """Give USERNAME a role on one target, overriding their global role there."""
    user = find_user(username)
    if user is None:
        fail(f"no user named {username!r}")
    try:
        grant_target_role(user, target, role, "cli", [t.name for t in services.console_settings().targets])
    except PeopleError as exc:
        fail(str(exc))
    click.echo(f"{username} is now {user.role_on(target)} on {target}.")


tokens_cli = StoreCheckedGroup("tokens", help="API tokens for scripts (Authorization: Bearer …).")


@tokens_cli.command("create")
@click.argument("username")
@click.option("--name", default="", help="What the token is for.")
@click.option("--expires-days", type=click.IntRange(min=1), default=None, help="Expire after N days.")
def tokens_create(username: str, name: str, expires_days: int | None) -> None:
    """Print a new token for USERNAME, once; only its hash is stored."""
    user = find_user(username)
    if user is None:
        fail(f"no user named {username!r}")
    if not user.active:
        fail(f"{username} is disabled")
    expires = utcnow() + timedelta(days=expires_days) if expires_days else None
    plain = create_token(user, name, None, expires, created_by="cli")
    click.echo(plain)


@click.command("worker", cls=StoreCheckedCommand)
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker for this console's queue, with the app's settings."""
    from app.adapters import postgres
    from app.jobs import runtime
    from app.jobs.queue import worker_queues
    from app.jobs.worker import ConsoleWorker

    settings = current_app.config["SETTINGS"]
    runtime.configure(current_app._get_current_object())  # type: ignore[attr-defined]
    # Look the client tools (and each pg_dump's compression) up once here: each job's forked
    # work horse inherits the answers.
    for tool in ("pg_dump", "pg_restore"):
        for found in postgres.installed_clients(tool, settings.pg_bin_dirs):
            if tool == "pg_dump":
                postgres.supported_compression(found.path, found.major)
    # Each job runs in a forked work horse: it must not share the parent's database connections.
    db.engine.dispose()
    os.register_at_fork(after_in_child=lambda: db.engine.dispose(close=False))
    redis = redis_for(settings)
    if problem := redis_problem(settings, redis):  # one line naming host and port, not RQ's traceback
        fail(problem)
    # What is loaded now is shared with every work horse; frozen, the horses' garbage collections
    # do not write to (and so copy) those pages: less memory per job.
    gc.freeze()
    ConsoleWorker(
        worker_queues(settings, redis),
        connection=redis,
        worker_ttl=60,  # an idle worker wakes at least every 45 s to run maintenance
        maintenance_interval=30,  # so jobs of a worker on another host are failed within ~2 minutes
        job_monitoring_interval=10,
    ).work(burst=burst)


@click.command("scheduler", cls=StoreCheckedCommand)
def scheduler() -> None:
    """Run RQ's cron scheduler for the backup schedule (safe to start on several hosts)."""
    from app.jobs import runtime
    from app.jobs.queue import queue_for
    from app.scheduler import ConsoleScheduler, scheduled_backup, scheduled_verify

    settings = current_app.config["SETTINGS"]
    runtime.configure(current_app._get_current_object())  # type: ignore[attr-defined]
    redis = redis_for(settings)
    if problem := redis_problem(settings, redis):
        fail(problem)
    ConsoleScheduler(
        settings, redis, queue_for(settings, redis).name, scheduled_backup, scheduled_verify
    ).start()


backup_cli = StoreCheckedGroup("backup", help="Backups from the shell.")


@backup_cli.command("create")
@click.option("--target", "target", default=None, help="The target to back up (default: the default target).")
@click.option("--wait", is_flag=True, help="Wait for the backup to finish and print its result.")
@click.option("--as", "as_user", default="cli", help="Name recorded in the audit log.")
def backup_create(target: str | None, wait: bool, as_user: str) -> None:
    """Enqueue a backup of a target's database (a worker must be running)."""
    from app import operations
    from app.jobs.queue import job_status

    name = target or services.console_settings().default_target or None
    try:
        with services.acting_on(name):
            using = operations.collaborators()
            job_id = operations.request_backup(operations.Actor(as_user, "operator"), using,
                                               source="from the command line")  # fmt: skip
    except UnknownTarget:
        fail(f"no target named {target!r} (see: flask --app wsgi targets list)")
    except operations.Refused as exc:
        fail(str(exc))
    settings, redis = using.settings, using.redis
    click.echo(f"Backup job {job_id} enqueued.")
    if not wait:
        return
    deadline = time.monotonic() + settings.job_max_seconds + 300
    while time.monotonic() < deadline:
        status = job_status(redis, job_id)
        if status and status["status"] == "finished":
            result = status["result"]
            size = human_size(result["size"])
            click.echo(f"Backup finished: {result['filename']} ({size}, sha256 {result['sha256']})")
            return
        if status and status["status"] == "failed":
            fail(f"backup failed: {status['error']}")
        time.sleep(0.5)
    fail("gave up waiting; is a worker running? (flask --app wsgi worker)")


targets_cli = StoreCheckedGroup("targets", help="The databases this console backs up.")


@targets_cli.command("list")
def targets_list() -> None:
    """Each target: name, environment, database host and name, storage and newest backup. Never a secret."""
    from app.health.targets import status_of

    default = services.console_settings().default_target
    for target in services.console_settings().targets:
        status = status_of(target.name)
        newest = status.storage_error and f"cannot list: {status.storage_error}" or (
            status.newest.filename if status.newest else "no backup yet")
        mark = " (default)" if target.name == default else ""
        click.echo(f"{target.name}{mark}\t{status.environment}\t{status.host}:{target.database.port}/"
                   f"{status.database}\t{status.storage}\t{newest}")  # fmt: skip


storage_cli = StoreCheckedGroup("storage", help="The backup store (bucket or folder).")


@storage_cli.command("check")
@click.option("--target", "target", default=None, help="Whose store (default: the default target's).")
def storage_check(target: str | None) -> None:
    """Make every call the console needs on a probe in the store; one line per call; exit 1 if any fails."""
    from app.adapters.storage_check import all_passed, check_storage, summary

    try:
        storage = services.storage(target)
    except UnknownTarget:
        fail(f"no target named {target!r} (see: flask --app wsgi targets list)")
    click.echo(f"Checking {storage.description}")
    results = check_storage(storage)
    for result in results:
        click.echo(result.line())
    audit.record("storage-check", "ok" if all_passed(results) else "failed", username="cli",
                 target=storage.description, detail=summary(results), target_name=target)  # fmt: skip
    if not all_passed(results):
        sys.exit(1)


notify_cli = StoreCheckedGroup("notify", help="Notifications (Apprise URLs).")


@notify_cli.command("test")
@click.option("--as", "as_user", default="cli", help="Name recorded in the audit log and the message.")
def notify_test(as_user: str) -> None:
    """Send one message to every configured URL; one line per URL (scheme and host); exit 1 if any fails."""
    from app import operations, services

    deliveries = operations.send_test_notification(operations.Actor(as_user, "admin"), services.settings())
    if not deliveries:
        fail("no notification URL is configured (NOTIFY_URLS, ALERT_WEBHOOK_URL, SMTP_HOST + ALERT_EMAIL_TO)")
    for delivery in deliveries:
        click.echo(delivery.line())
    if not all(d.ok for d in deliveries):
        sys.exit(1)
