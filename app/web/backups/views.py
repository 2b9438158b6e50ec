from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from markupsafe import Markup

from app import operations, services
from app.adapters.storage import StorageError
from app.domain import catalog, trends
from app.domain.console import ConsoleBackups
from app.domain.cron import next_run
from app.jobs import history
from app.services import listing_cache
from app.store import audit
from app.store.schedule import effective_schedule
from app.web.access import client_address, current_actor, role_required
from app.web.backup_facts import copies_in_stores, facts_of, no_such_backup, visible_backup
from app.web.backup_made import KINDS, Made, made_of, makers, safety_backups
from app.web.backups.activity import home_activity
from app.web.backups.forms import PinForm
from app.web.backups.overview import overview
from app.web.forms import ActionForm, CreateBackupForm, require_submitted, safe_next
from app.web.manifest_cache import manifests

bp = Blueprint("backups", __name__)


PAGE_ROWS = 50


@bp.route("/")
@bp.route("/targets/<target>/")
def index():
    """One target's backups; with several targets, `/` is the overview of them all."""
    if services.console_settings().several_targets and not g.target_in_url:
        services.set_target(None)  # the overview is about no one target
        return overview()
    return target_backups()


@role_required("viewer")
def target_backups():
    settings = services.settings()
    storage = services.storage()
    ours = operations.collaborators().backups
    error = None
    try:
        listed = ours.listing()
    except StorageError as exc:
        listed, error = [], str(exc)
    environments = sorted({b.environment for b in listed if b.environment})
    # `?environment=` filters the rows; a name no backup has gives an empty list that says so.
    environment = request.args.get("environment", "")
    backups = [b for b in listed if b.environment == environment] if environment else listed
    wanted = Wanted.asked()
    safety, peek = safety_backups(), (lambda b: manifests.peek(storage, b))  # noqa: E731 - read no manifest
    # Filters need every row's maker (one query); an unfiltered page only its own rows'.
    made_all = made_of(backups, peek, safety) if wanted else None
    if made_all is not None:
        backups = [b for b in backups if wanted.matches(b, made_all.get(b.filename))]
    page, pages = page_asked(len(backups))
    shown = backups[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
    # Only the backups the trend draws need their manifest (read once per process, see app/web/manifest_cache.py).
    drawn = ours.ours(listed)[: trends.POINTS]
    points = trends.backup_trend(
        listed, {b.filename: m for b in drawn if (m := manifests.get(storage, b))},
        owner=ours.owner, drop_percent=settings.size_drop_alert_percent,
    )  # fmt: skip
    schedule = effective_schedule(settings)
    return render_template(
        "backups/index.html",
        backups=shown,
        total=len(backups),
        page=page,
        pages=pages,
        first_row=(page - 1) * PAGE_ROWS + 1,
        environments=environments,
        environment=environment,
        unknown_environment=bool(environment) and environment not in environments,
        made=made_all if made_all is not None else made_of(shown, peek, safety),
        wanted=wanted,
        kept={k: v for k, v in (("environment", environment), *wanted.params()) if v},
        kinds=KINDS,
        makers=sorted({*makers(), *([wanted.by] if wanted.by else [])}),
        storage_used=storage_used(listed),
        notes=listing_cache.pin_notes(storage, services.redis(), settings.redis_namespace, shown),
        dropped={p.filename for p in points if p.dropped},
        foreign={b.filename for b in shown if not ours.is_ours(b)},
        copies=copies_in_stores([b.filename for b in shown if ours.is_ours(b)]),
        trend_points=points,
        trend_svg=Markup(trends.chart_svg(points, zone=settings.zone)),  # noqa: S704 - chart_svg escapes all text
        schedule=schedule,
        next_run=next_run(schedule, settings.zone) if schedule else None,
        storage_error=error,
        form=CreateBackupForm(),
        action_form=ActionForm(),
        zone=settings.zone,
        **home_activity(settings, schedule),
    )


@dataclass(frozen=True)
class Wanted:
    """The list's search and filters (`?q=`, `?kind=`, `?by=`), as GET parameters that survive paging."""

    q: str = ""
    kind: str = ""  # one of made.KINDS
    by: str = ""  # who made it

    @classmethod
    def asked(cls) -> Wanted:
        kind = request.args.get("kind", "")
        return cls(request.args.get("q", "").strip()[:200], kind if kind in KINDS else "",
                   request.args.get("by", "").strip()[:64])  # fmt: skip

    def __bool__(self) -> bool:
        return bool(self.q or self.kind or self.by)

    def params(self) -> tuple[tuple[str, str], ...]:
        return ("q", self.q), ("kind", self.kind), ("by", self.by)

    def matches(self, backup: catalog.Backup, made: Made | None) -> bool:
        """The search looks in the file name and the maker's name, ignoring case."""
        q = self.q.casefold()
        found = not q or q in backup.filename.casefold() or bool(made and made.by and q in made.by.casefold())
        return (found and (not self.kind or (made is not None and made.kind == self.kind))
                and (not self.by or (made is not None and made.by == self.by)))  # fmt: skip


def storage_used(listed: list[catalog.Backup]) -> list[tuple[str | None, int, int]]:
    """(environment, bytes, backups) for each environment in the store, the largest first; None: names of no form."""
    used: dict[str | None, list[int]] = {}
    for backup in listed:
        total = used.setdefault(backup.environment, [0, 0])
        total[0] += backup.size
        total[1] += 1
    return sorted(((env, size, count) for env, (size, count) in used.items()), key=lambda u: (-u[1], u[0] or ""))


def page_asked(rows: int) -> tuple[int, int]:
    """(page, pages) for `?page=`: anything but a whole number ≥ 1 is the first page; past the last is 404."""
    pages = max(1, -(-rows // PAGE_ROWS))
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:  # words, or a number too long to read
        page = 1
    if page < 1:
        page = 1
    if page > pages:
        abort(404, f"there is no page {page}: the list has {pages} page(s) of {PAGE_ROWS} backups")
    return page, pages


@bp.route("/backups", methods=["POST"])
@bp.route("/targets/<target>/backups", methods=["POST"])
@role_required("operator")
def create():
    form = require_submitted(CreateBackupForm())
    try:
        job_id = operations.request_backup(current_actor(), operations.collaborators())
    except operations.Refused as exc:
        if exc.job_id:  # a second click: lead to the backup the first one started, calmly
            run = history.find(exc.job_id)
            flash("Your backup is already running." if run is None or run.running else "Your backup has just finished.",
                  "info")  # fmt: skip
            return redirect(url_for("jobs.show", job_id=exc.job_id, next=safe_next(form.next.data)), 303)
        flash(str(exc), "error")
        if exc.status == 429:  # too soon after the last backup: the list, with the wait, answered as 429
            return index(), 429
        return redirect(url_for("backups.index")), 303
    return redirect(url_for("jobs.show", job_id=job_id, next=safe_next(form.next.data)), 303)


# POST too, answered 404: the router merges "//", so a POST to "/backups//pin" reaches this address and
# must be refused as an unknown address is, not as a known one with the wrong method (405).
@bp.route("/backups/<path:filename>", methods=["GET", "POST"])
@bp.route("/targets/<target>/backups/<path:filename>", methods=["GET", "POST"])
@role_required("viewer")
def show(filename: str):
    """One backup's page: everything the manifest and the console know, with the actions the role allows."""
    if request.method == "POST":
        abort(404, "There is nothing to post to here.")
    ours = operations.collaborators().backups
    backup = visible_backup_or_404(ours, filename)
    return render_template("backups/show.html", facts=facts_of(ours, backup), action_form=ActionForm(),
                           pin_form=PinForm(), zone=services.settings().zone)  # fmt: skip


def visible_backup_or_404(ours: ConsoleBackups, filename: str) -> catalog.Backup:
    """The listed backup of that exact name whose target the user may see; else 404, said plainly."""
    backup = visible_backup(ours, current_actor(), filename)
    if backup is None:
        abort(404, no_such_backup(filename))
    return backup


@bp.route("/backups/<path:filename>/manifest")
@bp.route("/targets/<target>/backups/<path:filename>/manifest")
@role_required("operator")
def manifest(filename: str):
    """The manifest as stored (as for the backup itself, an operator of its environment or an admin)."""
    backup = listed_or_404(filename, "download")
    found = manifests.get(services.storage(), backup)
    if found is None:
        abort(404, f"{filename[:120]} has no readable manifest")
    audit.record("download", "ok", username=current_user.username, target=filename, address=client_address(),
                 detail="its manifest")  # fmt: skip
    return Response(json.dumps(found, indent=2, sort_keys=True), mimetype="application/json",
                    headers={"Content-Disposition": attachment(f"{filename}.json")})  # fmt: skip


@bp.route("/backups/<path:filename>/download")
@bp.route("/targets/<target>/backups/<path:filename>/download")
@role_required("operator")
def download(filename: str):
    storage = services.storage()
    backup = listed_or_404(filename, "download")
    url = storage.download_url(filename)
    try:
        # A folder's file is opened by the store, which refuses links, FIFOs and devices: a listed
        # backup swapped for a link to /proc/self/environ must not stream the web server's secrets.
        blocks = None if url else storage.open_stream(filename)
    except StorageError as exc:
        audit.record("download", "refused", username=current_user.username, target=filename,
                     address=client_address(), detail=str(exc))  # fmt: skip
        abort(409, str(exc))
    audit.record("download", "ok", username=current_user.username, target=filename, address=client_address())
    if url:
        return redirect(url)
    return Response(
        stream_with_context(blocks),
        mimetype="application/octet-stream",
        headers={"Content-Disposition": attachment(filename), "Content-Length": str(backup.size)},
    )


def attachment(filename: str) -> str:
    """A Content-Disposition any server accepts: an ASCII fallback plus the exact name (RFC 6266)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def listed_or_404(filename: str, action: str) -> catalog.Backup:
    """The listed backup, if the user may `action` it (see operations.backup_for); else 404 or 403."""
    return operations.backup_for(current_actor(), operations.collaborators(), filename, action)


@bp.route("/backups/<path:filename>/pin", methods=["POST"])
@bp.route("/targets/<target>/backups/<path:filename>/pin", methods=["POST"])
@role_required("operator")
def pin(filename: str):
    listed_or_404(filename, "pin")
    form = require_submitted(PinForm())
    note = (form.note.data or "").strip()  # a POST without the field is a pin without a note
    catalog.pin(services.storage(), filename, note, current_user.username, datetime.now(UTC))
    listing_cache.listing_changed(services.settings(), services.redis())
    audit.record("pin", "ok", username=current_user.username, target=filename, detail=note or None)
    flash(f"Pinned {filename}: retention will keep it.", "ok")
    return redirect(back_to(), 303)


@bp.route("/backups/<path:filename>/unpin", methods=["POST"])
@bp.route("/targets/<target>/backups/<path:filename>/unpin", methods=["POST"])
@role_required("admin")  # an operator could otherwise unpin everything, then let retention erase it
def unpin(filename: str):
    backup = listed_or_404(filename, "unpin")
    require_submitted(ActionForm())
    catalog.unpin(services.storage(), filename)
    settings, redis = services.settings(), services.redis()
    listing_cache.listing_changed(settings, redis)
    listing_cache.forget_pin_note(redis, settings.redis_namespace, backup)
    audit.record("unpin", "ok", username=current_user.username, target=filename)
    flash(f"Unpinned {filename}.", "ok")
    return redirect(back_to(), 303)


@bp.route("/backups/<path:filename>/verify", methods=["POST"])
@bp.route("/targets/<target>/backups/<path:filename>/verify", methods=["POST"])
@role_required("operator")
def verify(filename: str):
    require_submitted(ActionForm())
    try:
        job_id = operations.request_verify(current_actor(), operations.collaborators(), filename)
    except operations.Refused as exc:
        if exc.status != 409:  # not found, not allowed: the error page; busy: back to the list
            raise
        flash(str(exc), "error")
        return redirect(back_to(), 303)
    return redirect(url_for("jobs.show", job_id=job_id), 303)


def back_to() -> str:
    """Where a backup's action returns: the page it was posted from (the list or the backup's page)."""
    return safe_next(request.form.get("next")) or url_for("backups.index")
