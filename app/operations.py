"""Requests for work: the one place where the pages, the API, the CLI and the scheduler ask for a
backup, a restore or a verify.

Each request runs its guards, takes the database lock and enqueues (`jobs.queue.start_job`),
then audits what happened, refused or requested. It is told who asks (an `Actor`: a person
or the scheduler, with the address they came from) and gets its collaborators as an
argument; it never reads Flask's `request` or `current_user`. A refusal is a `Refused`,
whose `status` the web layer answers with (400/403/404/409/429/503) in one place.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis import Redis

from app import services
from app.adapters.apprise import Delivery
from app.adapters.ratelimit import FailureLimit
from app.adapters.storage import StorageError, WontFit
from app.config import ROLES, Settings, UnknownTarget
from app.domain import catalog, partial_restore, provenance, restore, upload
from app.domain.alerts import notification_test_alert
from app.domain.catalog import Backup
from app.domain.console import ConsoleBackups
from app.domain.naming import Owner
from app.domain.restore import passkey_matches
from app.jobs import history, kept_databases
from app.jobs.notify import deliver
from app.jobs.queue import JobRefused, check_upload_later, start_job, stop_job
from app.services.listing_cache import listing_cache, listing_changed
from app.store import audit
from app.store.models import JobRun, utcnow

PASSKEY_FAILURES_ALLOWED = 5  # per admin and address
# ... and across everyone, per target (each has its own passkey), so a new admin account does not
# buy fresh guesses.
PASSKEY_ENVIRONMENT_FAILURES_ALLOWED = 20
PASSKEY_WINDOW_SECONDS = 15 * 60
WRONG_PASSKEY = "Wrong passkey"  # the restore page shows it at the passkey field


class Refused(Exception):
    """A request was refused before anything was enqueued; `status` is the HTTP answer.

    `job_id`: the job the request ran into when it is the asker's own (a second click on "Create
    backup"), so the caller can lead them to it instead of an error.
    """

    def __init__(self, message: str, status: int, *, job_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.job_id = job_id


def said_to(actor: Actor, exc: JobRefused) -> str:
    """A refusal in words for `actor`: the setting behind it only for admins, who can change it."""
    return f"{exc} ({exc.admin_note})" if exc.admin_note and actor.may("admin") else str(exc)


@dataclass(frozen=True)
class Actor:
    """Who asks: a person (with the role they act with, a token's cap applied) or the scheduler.

    `roles` are the roles they act with on each target by name, where that differs by target (a
    backup in a store two targets share belongs to one of them); None: `role` on every target.
    """

    username: str
    role: str
    address: str | None = None
    roles: Mapping[str, str] | None = field(default=None, compare=False)

    @classmethod
    def scheduler(cls) -> Actor:
        return cls("scheduler", "operator")

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def may_on(self, target: str, role: str) -> bool:
        """At least `role` on `target` (never on a target hidden from them by role "none")."""
        held = self.role if self.roles is None else self.roles.get(target, self.role)
        return held in ROLES and ROLES.index(held) >= ROLES.index(role)


@dataclass(frozen=True)
class Collaborators:
    settings: Settings
    redis: Redis
    backups: ConsoleBackups


def collaborators() -> Collaborators:
    """The settings, Redis and backups of the target this request, command or job acts on
    (`services.acting_on`; the default target otherwise). Needs an app context."""
    settings, redis = services.settings(), services.redis()
    backups = services.console_backups(settings, services.storage(), listing_cache(settings, redis))
    return Collaborators(settings, redis, backups)


def failure_limit(using: Collaborators, name: str, allowed: int, window_seconds: int) -> FailureLimit:
    """A failure counter in this console's Redis namespace; the caller names its parts (user, address, ...)."""
    return FailureLimit(using.redis, using.settings.redis_namespace, name, allowed, window_seconds)


def _start(using: Collaborators, kind: str, requested_by: str, *, backup: Backup | None = None,
           origin: provenance.Provenance | None = None, scheduled: bool = False, **options: bool) -> str:  # fmt: skip
    """Take the lock, record the request and enqueue (`start_job`). A restore or verify carries what was
    confirmed: the file's size and, when its manifest is signed, the sha256 that manifest gives."""
    return start_job(using.settings, using.redis, kind, requested_by, filename=backup.filename if backup else None,
                     scheduled=scheduled, archive_sha256=origin.sha256 if origin else None,
                     size=backup.size if backup else None, **options)  # fmt: skip


# --------------------------------------------------------------------------- backups


def request_backup(actor: Actor, using: Collaborators, *, scheduled: bool = False, source: str | None = None) -> str:
    """Enqueue a backup of the target; `source` says where it came from in the audit row."""
    detail = "scheduled" if scheduled else source
    try:
        job_id = _start(using, "backup", actor.username, scheduled=scheduled)
    except JobRefused as exc:
        own = None if scheduled else own_backup_just_asked(actor, using, running_only=exc.status != 429)
        audit.record("backup", "refused", username=actor.username, detail=str(exc), address=actor.address,
                     job_id=own.id if own else None)  # fmt: skip
        raise Refused(said_to(actor, exc), exc.status, job_id=own.id if own else None) from None
    audit.record("backup", "requested", username=actor.username, job_id=job_id, address=actor.address,
                 detail=detail)  # fmt: skip
    return job_id


JUST_ASKED_LOOKS = 5  # a tenth of a second apart


def own_backup_just_asked(actor: Actor, using: Collaborators, *, running_only: bool) -> JobRun | None:
    """The backup of this target that `actor` asked for moments ago: still running, or (unless `running_only`)
    asked within BACKUP_MIN_INTERVAL_SECONDS. What a double click's second request runs into."""
    settings = using.settings
    this_target = history.Seen.of([settings.target_name], settings.default_target)
    since = utcnow() - timedelta(seconds=settings.backup_min_interval_seconds)
    for attempt in range(JUST_ASKED_LOOKS):  # the first click's request may be a moment from its record
        runs, _ = history.page_of(kind="backup", status=None, page=1, seen=this_target, per_page=10)  # running first
        found = next((run for run in runs if run.requested_by == actor.username and not run.scheduled
                      and (run.running or (not running_only and run.enqueued_at >= since))), None)  # fmt: skip
        if found is not None or attempt == JUST_ASKED_LOOKS - 1:
            return found
        time.sleep(0.1)
    return None


def backup_for(actor: Actor, using: Collaborators, filename: str, action: str) -> Backup:
    """The listed backup, if `actor` may `action` it: another environment's backups need an admin, and a
    backup of another target (a store two targets share) the role `action` needs on that target too."""
    backup = using.backups.find(filename)
    if backup is None:
        raise Refused("No such backup", 404)
    require_role_on_owner(actor, using, backup, action)
    if not using.backups.is_ours(backup) and not actor.may("admin"):
        owner = f"{backup.app_name or 'unknown'}/{backup.environment or 'unknown'}"
        raise Refused(f"The backup {filename} belongs to another environment ({owner}, not {using.backups.owner}); "
                      f"only an admin may {action} it", 403)  # fmt: skip
    return backup


ROLE_FOR = {"download": "operator", "pin": "operator", "unpin": "operator", "verify": "operator", "restore": "admin"}


def owning_target(settings: Settings, backup: Backup) -> str | None:
    """The target whose app name and environment `backup`'s name carries; None for a file of no target."""
    for target in settings.targets:
        if Owner(target.app_name, target.app_env).owns(backup):
            return target.name
    return None


def require_role_on_owner(actor: Actor, using: Collaborators, backup: Backup, action: str) -> None:
    """Refuse (404, as for a hidden target) a backup of a target on which `actor` lacks the role `action` needs."""
    if using.backups.is_ours(backup):
        return
    owner = owning_target(using.settings, backup)
    if owner is not None and not actor.may_on(owner, ROLE_FOR.get(action, "admin")):
        raise Refused("No such backup", 404)


# --------------------------------------------------------------------------- restore tests


def request_verify(actor: Actor, using: Collaborators, filename: str) -> str:
    """Operators may verify only trusted backups of their own environment: a restore test runs the archive's SQL."""
    backup = backup_for(actor, using, filename, "verify")
    origin = provenance.provenance_in(using.backups.storage, backup, using.settings.signing_key)
    admin = actor.may("admin")
    try:
        if not origin.trusted and not admin:
            raise Refused(f"The backup {filename} is not trusted ({origin.reason}); only an admin may verify it", 403)
        return _enqueue_verify(actor, using, backup, origin, trusted_only=not admin)
    except Refused as exc:
        audit.record("verify", "refused", username=actor.username, target=filename, detail=str(exc),
                     address=actor.address)  # fmt: skip
        raise


def request_scheduled_verify(using: Collaborators) -> str | None:
    """Verify the newest *trusted* backup of ours, by the signed `finished_at` (a name is chosen by whoever
    wrote the file); None when there is none."""
    storage = using.backups.storage
    newest = provenance.newest_trusted(using.backups.ours(), lambda b: catalog.read_manifest(storage, b.filename),
                                       using.settings.signing_key, datetime.now(UTC))  # fmt: skip
    if newest is None:
        return None
    try:
        return _enqueue_verify(Actor.scheduler(), using, newest, using.backups.provenance(newest), trusted_only=True)
    except Refused as exc:
        audit.record("verify", "refused", username="scheduler", target=newest.filename, detail=str(exc))
        raise


def _enqueue_verify(actor: Actor, using: Collaborators, backup: Backup, origin: provenance.Provenance, *,
                    trusted_only: bool) -> str:  # fmt: skip
    try:
        job_id = _start(using, "verify", actor.username, backup=backup, origin=origin, trusted_only=trusted_only)
    except JobRefused as exc:
        raise Refused(said_to(actor, exc), exc.status) from None
    audit.record("verify", "requested", username=actor.username, target=backup.filename, job_id=job_id,
                 address=actor.address, detail=origin.audit_note)  # fmt: skip
    return job_id


# --------------------------------------------------------------------------- restore


def passkey_limit(using: Collaborators) -> FailureLimit:
    return failure_limit(using, "passkey", PASSKEY_FAILURES_ALLOWED, PASSKEY_WINDOW_SECONDS)


def environment_passkey_limit(using: Collaborators) -> FailureLimit:
    return failure_limit(using, "passkey-environment", PASSKEY_ENVIRONMENT_FAILURES_ALLOWED, PASSKEY_WINDOW_SECONDS)


def passkey_tries_left(actor: Actor, using: Collaborators) -> int:
    """Wrong passkeys `actor` may still type before the wait: theirs or the console's, whichever is fewer."""
    return min(passkey_limit(using).remaining(actor.username, actor.address or "unknown"),
               environment_passkey_limit(using).remaining(using.settings.app_env))  # fmt: skip


def restorable(using: Collaborators, filename: str) -> Backup:
    """The listed backup to restore; 404 for a name that is not listed."""
    backup = using.backups.find(filename)
    if backup is None:
        raise Refused(f"No backup is named {filename[:120]!r}", 404)
    return backup


def request_restore(actor: Actor, using: Collaborators, filename: str, passkey: str, *, without_owners: bool = False,
                    create_roles: bool = False, swap_back: bool = False, outside_data: str = "") -> str:  # fmt: skip
    """Check every guard in order, then enqueue; audits each attempt, never the passkey.

    `without_owners`: the admin's explicit choice to restore a backup whose roles this server lacks
    with every object owned by the console's role and no grant (said in the audit row and on the job).
    `create_roles`: the admin's explicit choice to create the roles this server lacks from the backup's
    signed definitions before the job's preflight (the two choices exclude each other).
    `swap_back`: on a restore's safety backup whose database is still kept (RESTORE_KEEP_PREVIOUS), the
    admin's choice to swap that database back instead of restoring the file (nothing to download).
    `outside_data`: for an uploaded file, the typed words `outside data into <database>` (`outside_data_words`).
    """
    if without_owners and create_roles:
        raise Refused("Choose either to create the missing roles or to restore without owners, not both", 400)
    if swap_back and (without_owners or create_roles):
        raise Refused("A swap back puts the kept database back as it is: it takes no other choice", 400)
    try:
        job_id, origin = _guarded_restore(actor, using, filename, passkey, without_owners, create_roles=create_roles,
                                          swap_back=swap_back, outside_data=outside_data)  # fmt: skip
    except Refused as exc:
        audit.record("restore", "refused", username=actor.username, target=filename[:255], detail=str(exc),
                     address=actor.address)  # fmt: skip
        raise
    notes = [origin.audit_note, "without owners and grants (the admin's choice)" if without_owners else None,
             "creating the missing roles from the backup (the admin's choice)" if create_roles else None,
             "swapping back the database set aside with this backup (the admin's choice)" if swap_back else None]
    audit.record("restore", "requested", username=actor.username, target=filename, job_id=job_id,
                 address=actor.address, detail="; ".join(n for n in notes if n) or None)  # fmt: skip
    return job_id


def _guarded_restore(
    actor: Actor, using: Collaborators, filename: str, passkey: str, without_owners: bool, *,
    create_roles: bool = False, swap_back: bool = False, outside_data: str = "",
) -> tuple[str, provenance.Provenance]:
    settings = using.settings
    if not actor.may("admin"):
        raise Refused(f"Restoring needs the admin role; you act as {actor.role}", 403)
    if not settings.restore_enabled:
        where = f"target {settings.target_name}" if settings.several_targets else "this console"
        raise Refused(f"Restore is disabled: no RESTORE_PASSKEY is configured for {where}", 503)
    backup = restorable(using, filename)
    require_role_on_owner(actor, using, backup, "restore")
    _check_uploaded(using, backup, into_live=settings.target.dbname, outside_data=outside_data)
    _check_passkey(actor, using, settings, passkey)
    if swap_back and kept_for_swap_back(using, backup.filename) is None:
        raise Refused(kept_databases.no_longer_kept(filename), 409)
    try:
        # No "recent backup" is asked for: the job backs up the database it replaces, as it is at the swap.
        # What the admin confirmed, read once here: the job restores this file and no other.
        origin = using.backups.provenance(backup)
        options = {"without_owners": True} if without_owners else {}
        if create_roles:
            options["create_roles"] = True
        if swap_back:
            options["swap_back"] = True
        return _start(using, "restore", actor.username, backup=backup, origin=origin, **options), origin
    except JobRefused as exc:
        raise Refused(str(exc), 409) from None


def _check_passkey(actor: Actor, using: Collaborators, settings: Settings, passkey: str) -> None:
    """`settings`' target's restore passkey, under the limits (per admin and address, and per target)."""
    limit, everyone = passkey_limit(using), environment_passkey_limit(using)
    passkey_of, who = settings.target_name or settings.app_env, (actor.username, actor.address or "unknown")
    # Each attempt is counted before the passkey is compared (one Redis script per count), so parallel
    # guesses get no more compares than the limits allow; a right passkey gives its counts back.
    wait = everyone.take(passkey_of)
    if not wait and (wait := limit.take(*who)):
        everyone.give_back(passkey_of)
    if wait:
        minutes = -(-wait // 60)
        raise Refused(f"Too many wrong passkeys; try again in {minutes} minute{'' if minutes == 1 else 's'}", 429)
    if not passkey_matches(passkey, settings.restore_passkey, settings.restore_passkey_hash):
        raise Refused(WRONG_PASSKEY, 403)
    everyone.give_back(passkey_of)
    limit.reset(*who)  # not the console's earlier failures: see above


def outside_data_words(database: str) -> str:
    """What an admin types to restore an uploaded file (data made outside the console) over a live database."""
    return f"outside data into {database}"


def _check_uploaded(using: Collaborators, backup: Backup, *, into_live: str | None = None,
                    outside_data: str = "") -> None:  # fmt: skip
    """An uploaded file is restorable once the worker has read it, into a new database; over the live database
    `into_live` only with the typed words naming it as outside data. Enforced here, whatever page or API asks."""
    manifest = catalog.read_manifest(using.backups.storage, backup.filename) if backup.has_manifest else None
    if not upload.is_uploaded(manifest) or not using.backups.provenance(backup).trusted:
        return
    if upload.upload_state(manifest):
        raise Refused(f"{backup.filename} was uploaded and is still being checked; restore it once that is done", 409)
    if into_live is not None and outside_data.strip() != outside_data_words(into_live):
        raise Refused(f"{backup.filename} was uploaded by {manifest.get('uploaded_by')}, not made by this console: "
                      f"restore it into a new database, or type “{outside_data_words(into_live)}” to replace the "
                      "live database with outside data", 400)  # fmt: skip


class NewDatabaseRefused(Refused):
    """The new database's name is refused (not valid, or taken on the destination server): said at its field."""


def destination_settings(using: Collaborators, target: str | None) -> Settings:
    """The settings of the target whose server a new database goes to (None: the backup's own target)."""
    if not target or target == using.settings.target_name:
        return using.settings
    try:
        return using.settings.for_target(target)
    except UnknownTarget:
        raise Refused(f"No target is named {target[:120]!r}", 404) from None


def request_restore_into_new(actor: Actor, using: Collaborators, filename: str, passkey: str, database: str, *,
                             target: str | None = None, without_owners: bool = False,
                             create_roles: bool = False, tables: list[str] | None = None) -> str:  # fmt: skip
    """Restore `filename` into a new database `database` on the server of `target` (None: the backup's own
    target's). Nothing is replaced, so there is no swap and no safety backup; the destination target's passkey
    is still asked where it has one. Admins of the destination target only; audited, never the passkey.
    `tables`: only these ("schema.table"; the job checks them against the archive's own list)."""
    where = f"{database} on {target or using.settings.target_name or 'this server'}"
    try:
        if without_owners and create_roles:
            raise Refused("Choose either to create the missing roles or to restore without owners, not both", 400)
        if not actor.may("admin"):
            raise Refused(f"Restoring needs the admin role; you act as {actor.role}", 403)
        into = destination_settings(using, target)
        if into is not using.settings and not actor.may_on(into.target_name, "admin"):
            raise Refused(f"Restoring into the server of {into.target_name} needs the admin role there", 403)
        if problem := restore.new_database_name_problem(database):
            raise NewDatabaseRefused(problem, 400)
        if tables is not None and (problem := partial_restore.selection_problem(tables)):
            raise Refused(problem[0].upper() + problem[1:], 400)
        backup = restorable(using, filename)
        require_role_on_owner(actor, using, backup, "restore")
        _check_uploaded(using, backup)
        if into.restore_enabled:  # nothing is replaced, but whoever holds the destination's passkey still agrees
            _check_passkey(actor, using, into, passkey)
        if restore.database_exists(into.target, database):  # the job's rename refuses a name taken later
            raise NewDatabaseRefused(restore.already_exists(into.target, database), 409)
        origin = using.backups.provenance(backup)
        options: dict = {"into_database": database}
        if into is not using.settings:
            options["into_target"] = into.target_name
        if without_owners:
            options["without_owners"] = True
        if create_roles:
            options["create_roles"] = True
        if tables:
            options["tables"] = sorted(set(tables))
        try:
            job_id = _start(using, "restore", actor.username, backup=backup, origin=origin, **options)
        except JobRefused as exc:
            raise Refused(str(exc), 409) from None
    except Refused as exc:
        audit.record("restore", "refused", username=actor.username, target=filename[:255],
                     detail=f"into a new database {where[:200]}: {exc}", address=actor.address)  # fmt: skip
        raise
    notes = [f"into a new database {where} ({restore.connection_string(into.target, database)})", origin.audit_note,
             "without owners and grants (the admin's choice)" if without_owners else None,
             "creating the missing roles from the backup (the admin's choice)" if create_roles else None,
             f"only the tables {', '.join(sorted(set(tables)))[:1000]}" if tables else None]  # fmt: skip
    audit.record("restore", "requested", username=actor.username, target=filename, job_id=job_id,
                 address=actor.address, detail="; ".join(n for n in notes if n))  # fmt: skip
    return job_id


# --------------------------------------------------------------------------- uploads


def request_upload(actor: Actor, using: Collaborators, original_name: str, chunks: Iterable[bytes], *,
                   expected_bytes: int = 0) -> tuple[upload.Uploaded, str]:  # fmt: skip
    """Stream an uploaded dump into the target's store (admins only) and enqueue its check on the worker; the
    stored file and the check's job id. Refused (400) at once, nothing stored, when it is not an archive."""
    settings = using.settings
    try:
        if not actor.may("admin"):
            raise Refused(f"Uploading a dump needs the admin role; you act as {actor.role}", 403)
        try:
            stored = upload.store_upload(using.backups.storage, upload.uploaded_owner(settings.app_name),
                                         using.backups.zone, chunks, original_name=original_name,
                                         uploaded_by=actor.username, signing_key=settings.signing_key,
                                         expected_bytes=expected_bytes)  # fmt: skip
        except upload.UploadRefused as exc:
            raise Refused(str(exc), 400) from None
        except WontFit as exc:
            raise Refused(f"The upload was not stored: {exc}", 413) from None
        except StorageError as exc:  # the part upload was aborted: nothing is left
            raise Refused(f"The upload was not stored: {exc}", 503) from None
    except Refused as exc:
        audit.record("upload", "refused", username=actor.username, target=original_name[:255], detail=str(exc),
                     address=actor.address)  # fmt: skip
        raise
    job_id = check_upload_later(settings, using.redis, stored.filename, actor.username)
    audit.record("upload", "requested", username=actor.username, target=stored.filename, job_id=job_id,
                 address=actor.address, detail=f"uploaded {original_name[:200]} ({stored.size} bytes, "
                                               f"sha256 {stored.sha256})")  # fmt: skip
    listing_changed(settings, using.redis)
    return stored, job_id


STOP_ROLE = {"backup": "operator", "verify": "operator", "restore": "admin"}  # the role each kind's Stop needs


def request_stop(actor: Actor, using: Collaborators, job_id: str) -> str:
    """Stop a job of `using`'s target (the caller has checked that `actor` may see it): "cancelled" for one
    still queued, "stopping" for a running one, which stops within a second (app/jobs/stopping.py). Operators
    may stop backups and verifies, admins restores too; a restore whose swap has begun cannot be (409).
    The job's kind and target come from its record in the console store, never from Redis; audited."""
    run = history.find(job_id)
    if run is None or (run.target or None) != (using.settings.target_name or None):
        raise Refused("no such job", 404)
    role = STOP_ROLE.get(run.kind, "admin")
    try:
        if not (actor.may_on(run.target, role) if run.target else actor.may(role)):
            raise Refused(f"stopping a {run.kind} needs the {role} role; you act as {actor.role}", 403)
        # Audited before the doorbell rings: the job reads who stopped it from this row.
        accepted = lambda: audit.record("stop", "requested", username=actor.username, target=run.filename,  # noqa: E731
                                        job_id=job_id, address=actor.address,
                                        detail=f"stop the {run.kind} asked for by {run.requested_by}")  # fmt: skip
        try:
            return stop_job(using.settings, using.redis, run, actor.username, on_accepted=accepted)
        except JobRefused as exc:
            raise Refused(str(exc), exc.status) from None
    except Refused as exc:
        audit.record("stop", "refused", username=actor.username, target=run.filename, job_id=job_id,
                     address=actor.address, detail=str(exc))  # fmt: skip
        raise


def kept_for_swap_back(using: Collaborators, filename: str) -> kept_databases.KeptDatabase | None:
    """The database a restore set aside and still keeps (RESTORE_KEEP_PREVIOUS), whose data the safety backup
    `filename` holds: what "Swap back" puts back; None when there is none (or no longer)."""
    return kept_databases.kept_with(using.settings, filename)  # the console store's record: Redis has no say


# --------------------------------------------------------------------------- notifications


def send_test_notification(actor: Actor, settings: Settings) -> list[Delivery]:
    """One message to every configured URL, now (the person waits for each URL's answer), audited.

    A single attempt per URL, so the page answers quickly and says what really happened.
    """
    deliveries = deliver(notification_test_alert(actor.username), settings, attempts=1)
    summary = "; ".join(d.line() for d in deliveries) or "no notification URL is configured"
    audit.record("notify-test", "ok" if deliveries and all(d.ok for d in deliveries) else "failed",
                 username=actor.username, detail=summary[:1000], address=actor.address)  # fmt: skip
    return deliveries
