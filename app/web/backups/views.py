from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, redirect, render_template, stream_with_context, url_for
from flask_login import current_user
from markupsafe import Markup

from app import audit, services
from app.domain import catalog, trends
from app.domain.catalog import find_backup, list_backups, read_manifest, read_pin
from app.domain.provenance import provenance_in
from app.domain.storage import StorageError
from app.jobs.queue import JobRefused, start_job
from app.jobs.schedule import effective_schedule, next_run
from app.web.auth import client_address, has_role, role_required
from app.web.auth.forms import safe_next
from app.web.backups.forms import CreateBackupForm, PinForm
from app.web.forms import require_submitted

bp = Blueprint("backups", __name__)


@bp.route("/")
@role_required("viewer")
def index():
    settings = services.settings()
    storage = services.storage()
    error = None
    try:
        backups = list_backups(storage, settings.zone)
    except StorageError as exc:
        backups, error = [], str(exc)
    points = trends.backup_trend(
        backups, {b.filename: m for b in backups if (m := cached_manifest(storage, b))},
        app_name=settings.app_name, environment=settings.app_env, drop_percent=settings.size_drop_alert_percent,
    )  # fmt: skip
    schedule = effective_schedule(settings)
    return render_template(
        "backups/index.html",
        backups=backups,
        notes={b.filename: (read_pin(storage, b.filename) or {}).get("note", "") for b in backups if b.pinned},
        dropped={p.filename for p in points if p.dropped},
        foreign={b.filename for b in backups if (b.environment, b.app_name) != (settings.app_env, settings.app_name)},
        trend_points=points,
        trend_svg=Markup(trends.chart_svg(points, zone=settings.zone)),  # noqa: S704 - chart_svg escapes all text
        schedule=schedule,
        next_run=next_run(schedule, settings.zone) if schedule else None,
        storage_error=error,
        form=CreateBackupForm(),
        action_form=PinForm(),
        zone=settings.zone,
    )


@lru_cache(maxsize=512)
def _manifest(storage_id: int, filename: str, last_modified) -> dict | None:
    return read_manifest(services.storage(), filename)


def cached_manifest(storage, backup) -> dict | None:
    """Manifests never change once written, so each is read from the store once per process."""
    if not backup.has_manifest or backup.environment != services.settings().app_env:
        return None
    return _manifest(id(storage), backup.filename, backup.last_modified)


@bp.route("/backups", methods=["POST"])
@role_required("operator")
def create():
    form = require_submitted(CreateBackupForm())
    try:
        job_id = start_backup_for(current_user.username)
    except JobRefused as exc:
        flash(str(exc), "error")
        if exc.status == 429:  # too soon after the last backup: the list, with the wait, answered as 429
            return index(), 429
        return redirect(url_for("backups.index")), 303
    return redirect(url_for("jobs.show", job_id=job_id, next=safe_next(form.next.data)), 303)


def start_backup_for(username: str) -> str:
    """Enqueue a backup and audit the request; shared by the page and the API."""
    try:
        job_id = start_job(services.settings(), services.redis(), "backup", username)
    except JobRefused as exc:
        audit.record("backup", "refused", username=username, detail=str(exc), address=client_address())
        raise
    audit.record("backup", "requested", username=username, job_id=job_id, address=client_address())
    return job_id


@bp.route("/backups/<path:filename>/download")
@role_required("operator")
def download(filename: str):
    storage = services.storage()
    backup = listed_or_404(filename, "download")
    audit.record("download", "ok", username=current_user.username, target=filename, address=client_address())
    url = storage.download_url(filename)
    if url:
        return redirect(url)
    return Response(
        stream_with_context(storage.open_stream(filename)),
        mimetype="application/octet-stream",
        headers={"Content-Disposition": attachment(filename), "Content-Length": str(backup.size)},
    )


def attachment(filename: str) -> str:
    """A Content-Disposition any server accepts: an ASCII fallback plus the exact name (RFC 6266)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def listed_or_404(filename: str, action: str) -> catalog.Backup:
    """The listed backup, if the user may `action` it: another environment's backups need an admin."""
    backup = find_backup(services.storage(), services.settings().zone, filename)
    if backup is None:
        abort(404, "no such backup")
    settings = services.settings()
    if (backup.environment, backup.app_name) != (settings.app_env, settings.app_name) and not has_role("admin"):
        owner = f"{backup.app_name or 'unknown'}/{backup.environment or 'unknown'}"
        abort(403, f"{filename} belongs to another environment ({owner}, not {settings.app_name}/{settings.app_env}); "
                   f"only an admin may {action} it")  # fmt: skip
    return backup


@bp.route("/backups/<path:filename>/pin", methods=["POST"])
@role_required("operator")
def pin(filename: str):
    listed_or_404(filename, "pin")
    form = require_submitted(PinForm())
    note = (form.note.data or "").strip()  # a POST without the field is a pin without a note
    catalog.pin(services.storage(), filename, note, current_user.username, datetime.now(UTC))
    audit.record("pin", "ok", username=current_user.username, target=filename, detail=note or None)
    flash(f"Pinned {filename}: retention will keep it.", "ok")
    return redirect(url_for("backups.index"), 303)


@bp.route("/backups/<path:filename>/unpin", methods=["POST"])
@role_required("admin")  # an operator could otherwise unpin everything, then let retention erase it
def unpin(filename: str):
    listed_or_404(filename, "unpin")
    require_submitted(PinForm())
    catalog.unpin(services.storage(), filename)
    audit.record("unpin", "ok", username=current_user.username, target=filename)
    flash(f"Unpinned {filename}.", "ok")
    return redirect(url_for("backups.index"), 303)


@bp.route("/backups/<path:filename>/verify", methods=["POST"])
@role_required("operator")
def verify(filename: str):
    """Operators may verify only trusted backups of their own environment: a restore test runs the archive's SQL."""
    backup = listed_or_404(filename, "verify")
    require_submitted(PinForm())
    settings, admin = services.settings(), has_role("admin")
    origin = provenance_in(services.storage(), backup, settings.signing_key)
    if not origin.trusted and not admin:
        message = f"{filename} is not trusted ({origin.reason}); only an admin may verify it"
        audit.record("verify", "refused", username=current_user.username, target=filename, detail=message,
                     address=client_address())  # fmt: skip
        abort(403, message)
    try:
        job_id = start_job(settings, services.redis(), "verify", current_user.username, filename=filename,
                           trusted_only=not admin)  # fmt: skip
    except JobRefused as exc:
        flash(str(exc), "error")
        return redirect(url_for("backups.index"), 303)
    audit.record("verify", "requested", username=current_user.username, target=filename, job_id=job_id,
                 address=client_address(), detail=origin.audit_note)  # fmt: skip
    return redirect(url_for("jobs.show", job_id=job_id), 303)
