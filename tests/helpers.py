"""What the tests share besides fixtures: the console in-process, signing in, the store, the audit
log and waiting for jobs. Real servers and processes are in tests/support; fixtures in conftest.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from app.domain.naming import backup_filename
from tests.support.s3_servers import S3Bucket

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


CHROMIUM = "/usr/bin/chromium"


PASSWORD = "correct horse battery"


STORE_FILE = "console.sqlite3"  # the console store's default file name under INSTANCE_PATH


class AuthActions:
    """Sign in through the real form, CSRF token included (the flaskr `auth` helper)."""

    def __init__(self, client):
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:

        page = self.client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
            r'name="csrf_token" value="([^"]+)"', page
        )
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, username: str = "admin", password: str = PASSWORD, next: str = ""):
        token = self.csrf_token("/login")
        return self.client.post(
            "/login", data={"username": username, "password": password, "next": next, "csrf_token": token}
        )

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf_token("/")})


def backup_run_in_process(app) -> dict:
    """Enqueue a backup through the jobs layer, run it with SimpleWorker, return its final status."""
    from app.jobs.queue import job_status, start_job
    from app.services import redis, settings

    with app.app_context():
        job_id = start_job(settings(), redis(), "backup", "olga")
    run_jobs_for(app)
    with app.app_context():
        return job_status(redis(), job_id)


def backup_behind_a_lock(app, target_db: str) -> dict:
    """Run a backup while another session holds a lock pg_dump waits on forever; the job's final status."""
    import psycopg

    from tests.support.databases import PG

    blocker = psycopg.connect(**{**PG, "dbname": target_db})
    blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    try:
        return backup_run_in_process(app)
    finally:
        blocker.close()


def backup_sessions(pg_admin, target_db: str) -> int:
    """How many of the console's pg_dump sessions are connected to `target_db`."""
    return pg_admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name LIKE 'pgconsole-backup-%%'",
        (target_db,),
    ).fetchone()[0]


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str = "2m"):
    """A tmpfs of `size` mounted on `folder` (created if missing) for the block: a disk that fills up."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def run_jobs_for(app, max_jobs: int | None = None):
    """Run the queued jobs (at most `max_jobs` of them) in this process, as a worker would."""
    from rq import SimpleWorker

    from app.jobs import runtime
    from app.jobs.queue import worker_options, worker_queues
    from app.services import redis, settings

    with app.app_context():
        runtime.configure(app)
        SimpleWorker(worker_queues(settings(), redis()), connection=redis(), **worker_options()).work(
            burst=True, max_jobs=max_jobs
        )


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def wait_for_job(redis, job_id: str, state: str = "finished", timeout: float = 120) -> dict:
    """Poll the job's status (as the API shows it) until it reaches `state`; fail on the other end."""
    from app.jobs.queue import job_status

    def reached():
        status = job_status(redis, job_id)
        if status["status"] in ("finished", "failed") and status["status"] != state:
            raise AssertionError(f"job {job_id} ended {status['status']}: {status['error']}")
        return status if status["status"] == state else None

    return wait_for(reached, timeout=timeout, interval=0.2, message=f"job {job_id} to be {state}")


PASSKEY = "test-passkey-0451"  # the app_env fixture's RESTORE_PASSKEY
IST = ZoneInfo("Asia/Kolkata")
NOTHING_LEFT = {"objects": [], "uploads": [], "lock": None}


# --------------------------------------------------------------------------- signing in


def sign_in(app, username: str, password: str = PASSWORD):
    """A client signed in as an existing user through the real form; (client, auth)."""
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.login(username, password).status_code == 302
    return client, auth


def signed_in(app, make_user, role: str = "operator", username: str = "olga"):
    """A new user of `role`, and a client signed in as them (without the form: see log_in)."""
    make_user(username, role)
    client = app.test_client()
    log_in(app, client, username)
    return client, AuthActions(client)


def log_in(app, client, username: str) -> None:
    """Sign `client` in as `username` the way the form does once the password matched (start_session),
    for tests where the form itself is not under test: no password hashing, no CSRF round trip."""
    from flask import session

    from app.accounts.people import find_user
    from app.web.access import start_session

    with app.test_request_context(environ_base=client.environ_base):  # the client's address and agent
        start_session(find_user(username))
        values = dict(session)
    with client.session_transaction() as browser_session:
        browser_session.update(values)


def open_uploads(storage) -> list:
    """The multipart uploads begun and neither completed nor aborted in `storage`'s bucket."""
    return storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])


def post(client, auth, url, data=None, page="/"):
    return client.post(url, data={**(data or {}), "csrf_token": auth.csrf_token(page)})


def user_named(app, username):
    from app.extensions import db
    from app.store.models import User

    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username=username)).scalar_one()
        db.session.expunge(user)
        return user


def operator_headers(app, username: str = "olga") -> dict[str, str]:
    from app.accounts.people import create_user
    from app.extensions import db
    from app.store.models import ApiToken

    with app.app_context():
        user = create_user(username, "operator", "x" * 12, created_by="test")
        token, plain = ApiToken.issue(user)
        db.session.add(token)
        db.session.commit()
    return {"Authorization": f"Bearer {plain}"}


# --------------------------------------------------------------------------- the store, jobs, the audit log


def storage_of(app):
    from app.services.clients import storage_for

    return storage_for(app.config["SETTINGS"])


def put_signed_backup(app, name: str, data: bytes = b"old", **manifest) -> None:
    """A backup file with a manifest signed by `app`'s key, as one of the team's consoles writes it: trusted."""
    from app.domain import catalog, provenance

    storage = storage_of(app)
    storage.put_bytes(name, data)
    fields = {"filename": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **manifest}
    catalog.write_manifest(storage, name, provenance.sign(fields, app.config["SETTINGS"].signing_key))


def old_backups(app, days, env="staging", signed: bool = True):
    """Backups (a few bytes each) named as if made `days` days ago; `signed`: with a signed manifest."""
    storage = storage_of(app)
    storage.check()
    names = [backup_filename("pharmatracker", env, datetime.now(UTC) - timedelta(days=d, hours=1), IST) for d in days]
    for name in names:
        if signed:
            put_signed_backup(app, name)
        else:
            storage.put_bytes(name, b"old")
    return names


def keys(bucket: S3Bucket) -> list[str]:
    pages = bucket.client().get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def leftovers(app) -> dict:
    """Anything a failed backup could have left: objects, partial files, unfinished uploads, the lock."""
    from app.jobs.locks import DatabaseLock
    from app.services import redis

    settings = app.config["SETTINGS"]
    storage = storage_of(app)
    found = {"objects": [o.name for o in storage.list_objects()]}
    if hasattr(storage, "client"):
        found["uploads"] = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    else:
        found["uploads"] = [p.name for p in Path(storage.folder).glob(".partial-*")] if storage.folder.exists() else []
    with app.app_context():
        found["lock"] = DatabaseLock(redis(), settings.redis_namespace, settings.target.dbname).holder()
    return found


def restore_api(client, headers, filename, passkey=PASSKEY, **options):
    body = {"filename": filename, "passkey": passkey, **options}
    return client.post("/api/setting/restore", headers=headers, json=body)


def restore_through_api(app, client, headers, filename, passkey=PASSKEY, **options) -> dict:
    """Ask for a restore through the API (202), run the queued jobs, and return the job's final status."""
    response = restore_api(client, headers, filename, passkey, **options)
    assert response.status_code == 202, response.get_json()
    run_jobs_for(app)
    return job_of(app, response.get_json()["job_id"])


def job_of(app, job_id):
    from app.jobs.queue import job_status
    from app.services import redis

    with app.app_context():
        return job_status(redis(), job_id)


def audit_rows(app, action: str) -> list:
    from app.store.models import AuditEvent

    with app.app_context():
        return AuditEvent.query.filter_by(action=action).all()
