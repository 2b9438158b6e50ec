"""Everything the console knows of one backup, for its page (`/backups/<filename>`) and its JSON twin:
the listing, the manifest (read once per process, app/web/manifest_cache.py), who made it and how
(app/web/backup_made.py), its trust, its pin, its restore test and the jobs that used it.

A page reads at most three small objects from the store: the manifest (once per process), the pin
and the restore-test report, each only when the listing shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app import services
from app.domain import catalog, provenance, upload
from app.domain.catalog import Backup
from app.domain.console import ConsoleBackups
from app.domain.trends import manifest_seconds
from app.operations import Actor, owning_target
from app.store import copies as store_copies
from app.store.models import JobRun
from app.web.backup_made import Made, jobs_on, made_of
from app.web.manifest_cache import manifests


@dataclass(frozen=True)
class Verification:
    """The restore test's report beside the backup, and whether it proves the backup restorable."""

    proven: bool  # signed with our key, naming this file and its trusted sha256 (provenance.proves)
    at: datetime | None  # when the report was written (the listing's time)
    by: str | None
    seconds: float | None
    rows: dict[str, int]  # table → rows restored

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class StoreCopy:
    """The backup in one copy store, as the copy job recorded it in the console store (never Redis)."""

    store: str
    state: str  # "verified" (read back, its sha256 matched), "failed" or "not copied"
    at: datetime | None = None  # when it was verified
    error: str | None = None


def copies_in_stores(filenames: list[str]) -> dict[str, list[StoreCopy]]:
    """For each file, its copy in each copy store of the target, in the target's `copies` order."""
    settings = services.settings()
    if not settings.copies or not filenames:
        return {}
    recorded = store_copies.copies_of(settings.target_name, filenames)
    shown = {}
    for filename in filenames:
        found = {c.store: c for c in recorded.get(filename, [])}
        shown[filename] = [StoreCopy(s.name, "not copied") if (c := found.get(s.name)) is None else
                           StoreCopy(s.name, "verified" if c.verified else "failed", c.verified_at, c.error)
                           for s in settings.copies]  # fmt: skip
    return shown


@dataclass(frozen=True)
class BackupFacts:
    backup: Backup
    ours: bool  # of this target's app and environment
    manifest: dict | None
    made: Made | None
    origin: provenance.Provenance
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    pin: dict | None
    verification: Verification | None
    jobs: list[JobRun]  # restores and restore tests of this file
    copies: list[StoreCopy] = field(default_factory=list)  # one per copy store of the target (TARGETS_FILE)

    @property
    def restores(self) -> list[JobRun]:
        return [j for j in self.jobs if j.kind == "restore"]

    @property
    def verifies(self) -> list[JobRun]:
        return [j for j in self.jobs if j.kind == "verify"]

    def text(self, key: str) -> str | None:
        """A text field of the manifest, or None (anyone who can write to the store writes manifests)."""
        value = (self.manifest or {}).get(key)
        return value if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "" else None

    @property
    def recipients(self) -> list[str]:
        encryption = (self.manifest or {}).get("encryption")
        recipients = encryption.get("recipients") if isinstance(encryption, dict) else None
        return [r for r in recipients if isinstance(r, str)] if isinstance(recipients, list) else []

    @property
    def uploaded(self) -> dict | None:
        """What the console recorded of an uploaded file (not made by the console): who, its original name and,
        once the worker has read it, its summary; None for anything else."""
        manifest = self.manifest or {}
        if not upload.is_uploaded(manifest) or not self.origin.trusted:
            return None
        contents = manifest.get("contents") if isinstance(manifest.get("contents"), dict) else {}
        return {"by": self.text("uploaded_by"), "originalName": self.text("original_name"),
                "state": upload.upload_state(manifest) or "checked",
                "tables": contents.get("tables"), "schemas": contents.get("schemas")}  # fmt: skip

    def to_json(self) -> dict:
        """The JSON API's view of the page; never the manifest's role definitions."""
        m = self.made
        return {
            **self.backup.to_json(),
            "madeBy": m.by if m else None, "kind": m.kind if m else None, "madeByJob": m.job_id if m else None,
            "startedAt": _iso(self.started_at), "finishedAt": _iso(self.finished_at), "seconds": self.seconds,
            "compression": self.text("compression_method") or self.text("compression"),
            "pgDumpVersion": self.text("pg_dump_version"), "serverVersion": self.text("server_version"),
            "database": self.text("database"), "sha256": self.text("sha256"),
            "trusted": self.origin.trusted, "untrustedReason": self.origin.reason or None,
            "encryptedFor": self.recipients,
            "pinNote": (self.pin or {}).get("note") if self.backup.pinned else None,
            "verification": None if self.verification is None else {
                "proven": self.verification.proven, "at": _iso(self.verification.at),
                "seconds": self.verification.seconds, "rows": self.verification.rows,
            },
            "restores": [{"jobId": j.id, "status": j.status, "requestedBy": j.requested_by,
                          "at": _iso(j.enqueued_at)} for j in self.restores],
            "copies": [{"store": c.store, "state": c.state, "verifiedAt": _iso(c.at)} for c in self.copies],
            "uploaded": self.uploaded,
        }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def visible_backup(ours: ConsoleBackups, actor: Actor, filename: str) -> Backup | None:
    """The listed backup of that exact name (naming.py's rules: a dump, no path, no sidecar) whose target
    `actor` may see; None otherwise, so a hidden target's backup answers as an unknown name does."""
    backup = ours.find(filename) if catalog.may_be_backup(filename) else None
    if backup is not None and not ours.is_ours(backup):
        owner = owning_target(services.console_settings(), backup)
        if owner is not None and not actor.may_on(owner, "viewer"):
            return None
    return backup


def no_such_backup(filename: str) -> str:
    return (f"There is no backup called “{filename[:120]}” in this store. It may have been deleted by retention, "
            "or the address is mistyped: the list shows every backup there is.")  # fmt: skip


def facts_of(ours: ConsoleBackups, backup: Backup) -> BackupFacts:
    """What the page of `backup` shows; the caller has checked that the user may see it."""
    storage = ours.storage
    manifest = manifests.get(storage, backup)
    if upload.upload_state(manifest):  # the one manifest rewritten after it was written: once the worker read it
        manifest = catalog.read_manifest(storage, backup.filename)
    made = made_of([backup], lambda b: manifest).get(backup.filename)
    origin = provenance.provenance_of(backup, manifest, ours.signing_key)
    return BackupFacts(
        backup=backup,
        ours=ours.is_ours(backup),
        manifest=manifest,
        made=made,
        origin=origin,
        started_at=provenance.manifest_time((manifest or {}).get("started_at")),
        finished_at=provenance.manifest_time((manifest or {}).get("finished_at")),
        seconds=made.seconds if made and made.seconds is not None else manifest_seconds(manifest),
        pin=catalog.read_pin(storage, backup.filename) if backup.pinned else None,
        verification=_verification(ours, backup, origin) if backup.verified_at else None,
        jobs=jobs_on(backup.filename),
        copies=copies_in_stores([backup.filename]).get(backup.filename, []) if ours.is_ours(backup) else [],
    )


def _verification(ours: ConsoleBackups, backup: Backup, origin: provenance.Provenance) -> Verification | None:
    report = catalog.read_verification(ours.storage, backup.filename)
    if report is None:
        return None
    rows = report.get("rows")
    rows = {str(t)[:200]: n for t, n in rows.items() if isinstance(n, int)} if isinstance(rows, dict) else {}
    seconds = report.get("seconds")
    by = report.get("requested_by")
    return Verification(
        proven=provenance.proves(report, backup, origin, ours.signing_key),
        at=backup.verified_at,
        by=by[:64] if isinstance(by, str) else None,
        seconds=float(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else None,
        rows=rows,
    )
