"""The JSON API: create backup, list backups, restore, and job status. Bearer tokens or a browser session."""

from __future__ import annotations

import sys

from flask import Blueprint, abort, jsonify, request, url_for

from app import operations, services
from app.adapters.storage import StorageError
from app.domain import partial_restore, upload
from app.extensions import csrf
from app.health import targets
from app.web.access import current_actor, load_user_from_token, role_required, visible_targets
from app.web.backup_facts import facts_of, no_such_backup, visible_backup
from app.web.job_access import may_stop_now, shown, visible_job
from app.web.job_steps import job_view

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)


@bp.before_request
def csrf_for_sessions():
    if request.endpoint == "api.upload_dump":  # a whole database, streamed (see upload_dump), never held; None
        request.max_content_length = sys.maxsize  # would mean MAX_CONTENT_LENGTH: the store's limits apply instead
    # A request that carries Authorization is judged by its token alone, never by a cookie: a
    # browser cannot add that header across sites, so CSRF only matters for cookie sessions.
    if "Authorization" in request.headers:
        if load_user_from_token(request) is None:  # Flask-Login asks it for this request's user
            return jsonify(error="sign-in required: send Authorization: Bearer <token>"), 401
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    return None


def is_text(value, longest: int) -> bool:
    """A non-empty string of at most `longest` characters that is valid UTF-8 (JSON allows lone surrogates)."""
    if not isinstance(value, str) or not value or len(value) > longest:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def accepted(job_id: str):
    return jsonify(job_id=job_id, status_url=url_for("api.job", job_id=job_id)), 202


@bp.route("/targets")
@role_required("viewer")
def target_list():
    """The targets the caller may see, each with its status; never a secret."""
    return jsonify([targets.status_of(t.name).to_json() for t in visible_targets()])


@bp.route("/setting/backup", methods=["POST"])
@bp.route("/targets/<target>/backup", methods=["POST"])
@role_required("operator")
def create_backup():
    try:
        return accepted(operations.request_backup(current_actor(), operations.collaborators()))
    except operations.Refused as exc:
        if not exc.job_id:
            raise
        # The caller's own backup of this target is running (or just was): refused, and which one it is.
        return jsonify(error=str(exc), job_id=exc.job_id, status_url=url_for("api.job", job_id=exc.job_id)), exc.status


@bp.route("/setting/backups")
@bp.route("/targets/<target>/backups")
@role_required("viewer")
def backups():
    try:
        found = operations.collaborators().backups.listing()
    except StorageError as exc:
        return jsonify(error=str(exc)), 503
    return jsonify([b.to_json() for b in found])


@bp.route("/setting/backups/<path:filename>")
@bp.route("/targets/<target>/backups/<path:filename>")
@role_required("viewer")
def backup(filename: str):
    """One backup, as its page shows it (the JSON twin of /backups/<filename>)."""
    ours = operations.collaborators().backups
    found = visible_backup(ours, current_actor(), filename)
    if found is None:
        abort(404, no_such_backup(filename))
    return jsonify(facts_of(ours, found).to_json())


@bp.route("/jobs/<job_id>")
@role_required("viewer")
def job(job_id: str):
    status, run = visible_job(job_id)  # whose it is: from the job's record when there is one
    if status is None:
        abort(404, "no such job")
    # `view`: what the job page shows (status words, step, bar), so its script and the page agree.
    return jsonify({**shown(status, run), "view": job_view(status), "may_stop": may_stop_now(status, run)})


@bp.route("/jobs/<job_id>/stop", methods=["POST"])
@role_required("viewer")  # operators stop backups and verifies, admins restores: request_stop decides (403)
def stop_job(job_id: str):
    _, run = visible_job(job_id)
    if run is None:
        abort(404, "no such job")
    with services.acting_on(run.target):
        answer = operations.request_stop(current_actor(), operations.collaborators(), job_id)
    return jsonify(job_id=job_id, status=answer, status_url=url_for("api.job", job_id=job_id)), 202


@bp.route("/setting/restore", methods=["POST"])
@bp.route("/targets/<target>/restore", methods=["POST"])
@role_required("admin")
def restore():
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly nested JSON
        body = None
    if not isinstance(body, dict):
        return jsonify(error='send a JSON object: {"filename": "...", "passkey": "..."}'), 400
    filename, passkey = body.get("filename"), body.get("passkey")
    if not is_text(filename, 255):
        return jsonify(error="filename must be the name of a listed backup"), 400
    into = body.get("into")
    if into is not None:  # a new database: its target's passkey only where that target has one
        passkey = body.get("passkey", "")
    if not (is_text(passkey, 256) or (into is not None and passkey == "")):
        return jsonify(error="passkey must be a non-empty string"), 400
    without_owners = body.get("without_owners", False)
    if not isinstance(without_owners, bool):
        return jsonify(error="without_owners must be true or false"), 400
    create_roles = body.get("create_roles", False)
    if not isinstance(create_roles, bool):
        return jsonify(error="create_roles must be true or false"), 400
    outside_data = body.get("outside_data", "")
    if not is_text(outside_data, 300) and outside_data != "":
        return jsonify(error='outside_data must be the words "outside data into <database>"'), 400
    tables = body.get("tables")
    if tables is not None and into is None:  # see docs/restore.md, "Part of a backup"
        return jsonify(error=partial_restore.INTO_LIVE_REFUSED), 400
    if into is not None:
        return restore_into_new(into, filename, passkey, without_owners=without_owners, create_roles=create_roles,
                                tables=tables)  # fmt: skip
    return accepted(operations.request_restore(current_actor(), operations.collaborators(), filename, passkey,
                                               without_owners=without_owners, create_roles=create_roles,
                                               outside_data=outside_data))  # fmt: skip


def restore_into_new(into: object, filename: str, passkey: str, *, without_owners: bool, create_roles: bool,
                     tables: object = None):  # fmt: skip
    """`"into": {"database": "name", "target": "other-target"}`: a restore into a new database (the target's
    server by default), which replaces nothing; `"tables": ["schema.table", …]`: only those."""
    if tables is not None and (problem := partial_restore.selection_problem(tables)):
        return jsonify(error=problem), 400
    if not isinstance(into, dict) or set(into) - {"database", "target"}:
        return jsonify(error='into must be {"database": "name"} with an optional "target"'), 400
    database, target = into.get("database"), into.get("target")
    if not is_text(database, 255):
        return jsonify(error="into.database must be the new database's name"), 400
    if target is not None and not is_text(target, 255):
        return jsonify(error="into.target must be the name of a target"), 400
    return accepted(operations.request_restore_into_new(current_actor(), operations.collaborators(), filename, passkey,
                                                        database, target=target, without_owners=without_owners,
                                                        create_roles=create_roles, tables=tables))  # fmt: skip


UPLOAD_READ = 1024 * 1024  # the body is read and passed on in blocks of this size, never whole


@bp.route("/setting/uploads/<name>", methods=["PUT"])
@bp.route("/targets/<target>/uploads/<name>", methods=["PUT"])
@role_required("admin")
def upload_dump(name: str):
    """The raw body is a `pg_dump -Fc` archive made elsewhere (`curl --upload-file`): streamed into the store."""
    length = request.content_length or 0
    stream = request.stream
    chunks = iter(lambda: stream.read(UPLOAD_READ), b"")
    stored, job_id = operations.request_upload(current_actor(), operations.collaborators(), name[:255], chunks,
                                               expected_bytes=length)  # fmt: skip
    return jsonify(filename=stored.filename, size=stored.size, sha256=stored.sha256, original_name=name[:255],
                   state=upload.CHECKING, job_id=job_id), 201  # fmt: skip
