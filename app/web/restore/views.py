"""The restore page. Every guard runs in the application layer (`operations.request_restore`)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from app import operations
from app.config import Settings
from app.domain import preflight, restore, roles
from app.domain.provenance import UNTRUSTED_WARNING, provenance_in
from app.domain.upload import UPLOADED_ENVIRONMENT
from app.web.access import current_actor, role_required
from app.web.manifest_cache import manifests
from app.web.restore.forms import NEW, REPLACE, RestoreForm

bp = Blueprint("restore", __name__)


@bp.route("/backups/<path:filename>/restore", methods=["GET", "POST"])
@bp.route("/targets/<target>/backups/<path:filename>/restore", methods=["GET", "POST"])
@role_required("admin")
def confirm(filename: str):
    using = operations.collaborators()
    settings = using.settings
    backup = operations.restorable(using, filename)  # 404 through the Refused handler
    foreign = not using.backups.is_ours(backup)
    destinations = restorable_into(settings)
    # Over the live database, an uploaded file's confirmation names it as outside data (operations checks it).
    uploaded = backup.environment == UPLOADED_ENVIRONMENT
    expected = (operations.outside_data_words(settings.target.dbname) if uploaded
                else f"{backup.environment or 'unknown'}/{settings.target.dbname}" if foreign
                else settings.target.dbname)  # fmt: skip
    form = RestoreForm(expected, targets=[(t.target_name, label) for t, label in destinations],
                       passkey_on=frozenset(t.target_name for t, _ in destinations if t.restore_enabled),
                       here=settings.target_name)  # fmt: skip
    error, status = None, 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                job_id = ask_for_restore(using, filename, form)
                return redirect(url_for("jobs.show", job_id=job_id), 303)
            except operations.NewDatabaseRefused as exc:  # said at the name's field
                status, form.new_database.errors = exc.status, [str(exc)]
            except operations.Refused as exc:
                status = exc.status
                if passkey_refusal(exc):  # said at the field it is about (and linked from the summary)
                    form.passkey.errors = [str(exc)]
                else:
                    error = str(exc)
        else:
            status = 400
    storage = using.backups.storage
    sessions = restore.connected_sessions(settings.target)
    manifest = manifests.get(storage, backup)  # kept: the list can then say who made it
    origin = provenance_in(storage, backup, settings.signing_key)
    kept = operations.kept_for_swap_back(using, backup.filename)  # what "Swap back" would put back
    if request.method == "GET":  # a choice, offered as a link: the page needs no script
        form.where.data = NEW if request.args.get("into") == NEW else REPLACE
        form.label_confirm()
        form.without_owners.data = request.args.get("without_owners") == "1"
        form.create_roles.data = request.args.get("create_roles") == "1" and not form.without_owners.data
        form.swap_back.data = request.args.get("swap_back") == "1" and kept is not None and not form.without_owners.data
    # A new database on another target's server: what that server lacks.
    chosen = [t for t, _ in destinations if form.into_new and t.target_name == form.destination]
    checked_on = chosen[0] if chosen else settings  # only a target the admin may restore into
    found = preflight_found(checked_on, manifest if origin.trusted else None, form)
    if form.swap_back.data:  # nothing of the archive is restored: what it would need does not stop a swap back
        found["blocked"] = []
    return (
        render_template(
            "restore/confirm.html",
            backup=backup,
            manifest=manifest,
            origin=origin,
            **found,
            kept=kept,
            swap_back_gone=request.args.get("swap_back") == "1" and kept is None,
            untrusted_warning=UNTRUSTED_WARNING,
            foreign=foreign,
            tries_left=operations.passkey_tries_left(current_actor(), using),
            form=form,
            destinations=destinations,
            table_groups=tables_by_schema(manifest if origin.trusted else None),
            sessions=sessions,
            error=error,
            settings=settings,
        ),
        status,
    )


def restorable_into(settings: Settings) -> list[tuple[Settings, str]]:
    """The targets whose server the current admin may restore a new database on (this one first), as settings,
    each with its label for the select."""
    actor = current_actor()
    others = [settings.for_target(t.name) for t in settings.targets
              if t.name != settings.target_name and actor.may_on(t.name, "admin")]  # fmt: skip
    return [(t, f"{t.target_name or t.target.dbname} ({t.target.host}:{t.target.port})") for t in [settings, *others]]


def ask_for_restore(using: operations.Collaborators, filename: str, form: RestoreForm) -> str:
    """The restore the form asks for: in place of the live database, or into a new one."""
    if form.into_new:
        into = form.destination if form.destination != using.settings.target_name else None
        return operations.request_restore_into_new(current_actor(), using, filename, form.passkey.data or "",
                                                   form.new_database.data, target=into,
                                                   tables=form.tables.data or None,
                                                   without_owners=form.without_owners.data,
                                                   create_roles=form.create_roles.data)  # fmt: skip
    return operations.request_restore(current_actor(), using, filename, form.passkey.data,
                                      without_owners=form.without_owners.data, create_roles=form.create_roles.data,
                                      swap_back=form.swap_back.data, outside_data=form.expected)  # fmt: skip


def tables_by_schema(signed_manifest: dict | None) -> dict[str, list[str]] | None:
    """The backup's tables as its signed manifest records them, by schema ("shop" → ["shop.orders", …]); None
    for a backup whose manifest does not (made before it did, or not signed by this team)."""
    recorded = (signed_manifest or {}).get("tables")
    if not isinstance(recorded, list):
        return None
    groups: dict[str, list[str]] = {}
    for name in sorted(n for n in recorded if isinstance(n, str) and "." in n):
        groups.setdefault(name.split(".", 1)[0], []).append(name)
    return groups


def passkey_refusal(exc: operations.Refused) -> bool:
    """A wrong passkey, or too many of them: the passkey field's error."""
    return str(exc) == operations.WRONG_PASSKEY or (exc.status == 429 and "passkey" in str(exc))


def preflight_found(settings: Settings, signed_manifest: dict | None, form: RestoreForm) -> dict:
    """What the target server lacks for this backup, as the page shows it, and what the chosen options avoid.

    Only a signed manifest speaks before the download: a forged one could hide or invent problems.
    """
    needs = preflight.needs_in(signed_manifest) if signed_manifest else None
    server = preflight.server_facts(settings.target, needs) if needs else None
    definitions = roles.definitions_in(signed_manifest) if needs else None
    found = preflight.problems(needs, server, roles.creatable(definitions)) if needs and server else None
    chosen = {"without_owners": bool(form.without_owners.data), "create_roles": bool(form.create_roles.data)}
    return {
        "checked": found is not None,
        "before": preflight.in_effect(found or [], **chosen),
        "blocked": preflight.refusing(found or [], **chosen),
        "avoidable": [p for p in found or [] if p.avoided_without_owners],
        "creatable": [p for p in found or [] if p.avoided_creating_roles],
    }
