"""The restore page and its guards. Every guard runs here, before anything is enqueued."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user

from app import audit, services
from app.domain.catalog import Backup, read_manifest
from app.domain.provenance import UNTRUSTED_WARNING, provenance_in
from app.domain.restore import RestoreRefused, find_listed, passkey_matches, require_recent_backup
from app.jobs.queue import JobRefused, start_job
from app.ratelimit import FailureLimit
from app.web.auth import client_address, failure_limit, role_required
from app.web.backups.forms import CreateBackupForm
from app.web.restore.forms import RestoreForm

bp = Blueprint("restore", __name__)

PASSKEY_FAILURES_ALLOWED = 5  # per admin and address
# ... and across everyone on this console, so a new admin account does not buy fresh guesses.
PASSKEY_ENVIRONMENT_FAILURES_ALLOWED = 20
PASSKEY_WINDOW_SECONDS = 15 * 60


class RestoreDenied(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def passkey_limit() -> FailureLimit:
    return failure_limit("passkey", PASSKEY_FAILURES_ALLOWED, PASSKEY_WINDOW_SECONDS)


def environment_passkey_limit() -> FailureLimit:
    return failure_limit("passkey-environment", PASSKEY_ENVIRONMENT_FAILURES_ALLOWED, PASSKEY_WINDOW_SECONDS)


def listed_backup(filename: str) -> tuple[Backup, list[Backup]]:
    backup, listed = find_listed(services.storage(), services.settings().zone, filename)
    if backup is None or not filename.endswith(".dump"):
        raise RestoreDenied(f"no backup named {filename[:120]!r}", 404)
    return backup, listed


def request_restore(filename: str, passkey: str) -> str:
    """Check every guard in order, then enqueue; audits each attempt. Raises RestoreDenied."""
    username, address = current_user.username, client_address()
    try:
        job_id, backup = _guarded_enqueue(filename, passkey, username, address)
    except RestoreDenied as exc:
        audit.record("restore", "refused", username=username, target=filename[:255], detail=str(exc), address=address)
        raise
    origin = provenance_in(services.storage(), backup, services.settings().signing_key)
    audit.record("restore", "requested", username=username, target=filename, job_id=job_id, address=address,
                 detail=origin.audit_note)  # fmt: skip
    return job_id


def _guarded_enqueue(filename: str, passkey: str, username: str, address: str) -> tuple[str, Backup]:
    settings = services.settings()
    if not settings.restore_enabled:
        raise RestoreDenied("restore is disabled: no RESTORE_PASSKEY is configured for this console", 503)
    backup, listed = listed_backup(filename)
    limit, everyone = passkey_limit(), environment_passkey_limit()
    wait = everyone.blocked_for(settings.app_env) or limit.blocked_for(username, address)
    if wait:
        raise RestoreDenied(f"too many wrong passkeys; try again in {-(-wait // 60)} minute(s)", 429)
    if not passkey_matches(passkey, settings.restore_passkey, settings.restore_passkey_hash):
        limit.failed(username, address)
        everyone.failed(settings.app_env)
        raise RestoreDenied("wrong passkey", 403)
    limit.reset(username, address)  # not the environment's count: whoever knows the passkey need not clear it
    try:
        require_recent_backup(
            listed, app_name=settings.app_name, environment=settings.app_env, minutes=settings.recent_check_minutes
        )
        return start_job(settings, services.redis(), "restore", username, filename=filename), backup
    except (RestoreRefused, JobRefused) as exc:
        raise RestoreDenied(str(exc), 409) from None


@bp.route("/backups/<path:filename>/restore", methods=["GET", "POST"])
@role_required("admin")
def confirm(filename: str):
    settings = services.settings()
    try:
        backup, listed = listed_backup(filename)
    except RestoreDenied as exc:
        abort(exc.status, str(exc))
    form = RestoreForm(settings.target.dbname)
    error, status = None, 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                job_id = request_restore(filename, form.passkey.data)
                return redirect(url_for("jobs.show", job_id=job_id), 303)
            except RestoreDenied as exc:
                error, status = str(exc), exc.status
        else:
            status = 400
    try:
        recent = require_recent_backup(
            listed, app_name=settings.app_name, environment=settings.app_env, minutes=settings.recent_check_minutes
        )
    except RestoreRefused:
        recent = None
    return (
        render_template(
            "restore/confirm.html",
            backup=backup,
            manifest=read_manifest(services.storage(), filename) if backup.has_manifest else None,
            origin=provenance_in(services.storage(), backup, settings.signing_key),
            untrusted_warning=UNTRUSTED_WARNING,
            recent=recent,
            form=form,
            safety_form=CreateBackupForm(next=request.path),
            error=error,
            settings=settings,
        ),
        status,
    )
