from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, stream_with_context, url_for
from flask_login import current_user

from app import audit, services
from app.domain.catalog import find_backup, list_backups
from app.domain.storage import StorageError
from app.jobs.queue import JobRefused, start_job
from app.web.auth import client_address, role_required
from app.web.auth.forms import safe_next
from app.web.backups.forms import CreateBackupForm

bp = Blueprint("backups", __name__)


@bp.route("/")
@role_required("viewer")
def index():
    settings = services.settings()
    error = None
    try:
        backups = list_backups(services.storage(), settings.zone)
    except StorageError as exc:
        backups, error = [], str(exc)
    return render_template(
        "backups/index.html", backups=backups, storage_error=error, form=CreateBackupForm(), zone=settings.zone
    )


@bp.route("/backups", methods=["POST"])
@role_required("operator")
def create():
    form = CreateBackupForm()
    if not form.validate_on_submit():
        abort(400, "the form expired; reload the page and try again")
    try:
        job_id = start_backup_for(current_user.username)
    except JobRefused as exc:
        flash(str(exc), "error")
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
    backup = find_backup(storage, services.settings().zone, filename)
    if backup is None:
        abort(404, "no such backup")
    audit.record("download", "ok", username=current_user.username, target=filename, address=client_address())
    url = storage.download_url(filename)
    if url:
        return redirect(url)
    return Response(
        stream_with_context(storage.open_stream(filename)),
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Content-Length": str(backup.size)},
    )
