"""Which backups this team's consoles made: manifests signed with a shared key.

Anyone who can write to the bucket can put an archive in it, and restoring an archive runs
whatever SQL it holds (a `CHECK` calling a function that runs `COPY ... TO PROGRAM`, say).
So a console signs each manifest with an HMAC-SHA256 over its canonical JSON, keyed by
`BACKUP_SIGNING_KEY`, and treats a backup as *trusted* only when that signature verifies
and the manifest describes this very object (its name and size). The archive's sha256 is
checked against the signed manifest while it downloads, before anything is restored.

Nothing unattended touches an untrusted backup: the scheduler picks the newest *trusted*
backup by the manifest's `finished_at`, never by the date in a name that anyone can choose.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.adapters.storage import Storage
from app.domain.catalog import Backup, read_manifest

SIGNATURE_FIELD = "signature"
SIGNATURE_PREFIX = "hmac-sha256:"
UNTRUSTED_WARNING = (
    "this file was not made by a console that holds this signing key; restoring it runs whatever SQL it contains"
)
UNREADABLE_MANIFEST = "its manifest cannot be read (too large, too deeply nested, not JSON or not a regular file)"
CLOCK_SKEW = timedelta(minutes=1)  # a name dated later than this after now is "in the future"


@dataclass(frozen=True)
class Provenance:
    trusted: bool
    reason: str  # in words, why the backup is not trusted; "" when it is
    finished_at: datetime | None = None  # from the signed manifest, when trusted
    sha256: str | None = None  # the archive's sha256 from the signed manifest, when trusted

    def to_json(self) -> dict:
        return {"trusted": self.trusted, "reason": self.reason or None}

    @property
    def audit_note(self) -> str | None:
        """What the audit row of a restore or verify says about it: nothing when trusted."""
        return None if self.trusted else f"untrusted backup: {self.reason}"


def canonical(manifest: dict) -> bytes:
    """The bytes that are signed: the manifest without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signature(manifest: dict, key: bytes) -> str:
    return SIGNATURE_PREFIX + hmac.new(key, canonical(manifest), hashlib.sha256).hexdigest()


def sign(manifest: dict, key: bytes) -> dict:
    return {**manifest, SIGNATURE_FIELD: _signature(manifest, key)}


def signed_with(document: dict, key: bytes) -> bool:
    """`document` (a manifest or a restore-test report) carries a valid signature made with `key`."""
    given = document.get(SIGNATURE_FIELD)
    return isinstance(given, str) and hmac.compare_digest(given.encode(), _signature(document, key).encode())


def proves(report: dict | None, backup: Backup, origin: Provenance, key: bytes) -> bool:
    """A restore test's report proves `backup` restorable: it is signed with `key` and names this file and
    the sha256 that its trusted manifest (`origin`) gives, so a planted report, or a real one copied
    beside another file or left from an earlier object under this name, proves nothing."""
    return (
        report is not None
        and origin.trusted
        and origin.sha256 is not None
        and signed_with(report, key)
        and report.get("filename") == backup.filename
        and report.get("sha256") == origin.sha256
    )


def provenance_of(backup: Backup, manifest: dict | None, key: bytes) -> Provenance:
    """Trusted when the manifest's signature verifies and it names this object and its size."""
    if manifest is None:
        # Listed with a manifest that catalog.read_json refused (anyone who can write to the store writes manifests).
        return Provenance(False, UNREADABLE_MANIFEST if backup.has_manifest else "it has no manifest")
    given = manifest.get(SIGNATURE_FIELD)
    if not isinstance(given, str) or not given:
        return Provenance(False, "its manifest is not signed")
    if not signed_with(manifest, key):
        return Provenance(False, "its manifest's signature does not match this console's signing key")
    if manifest.get("filename") != backup.filename:
        return Provenance(False, f"its signed manifest is for another file ({str(manifest.get('filename'))[:120]})")
    if manifest.get("size") != backup.size:
        return Provenance(False, f"it is {backup.size} bytes, its signed manifest says {manifest.get('size')}")
    sha256 = manifest.get("sha256")
    if not isinstance(sha256, str) or len(sha256) != 64:
        return Provenance(False, "its signed manifest gives no sha256")
    return Provenance(True, "", manifest_time(manifest.get("finished_at")), sha256)


def provenance_in(storage: Storage, backup: Backup, key: bytes) -> Provenance:
    """The provenance of a listed backup, reading its manifest from the store."""
    return provenance_of(backup, read_manifest(storage, backup.filename) if backup.has_manifest else None, key)


def dated_in_future(backup: Backup, now: datetime) -> bool:
    """A name dated after now: never "newest", and flagged on the list."""
    return backup.created_at > now + CLOCK_SKEW


def newest_trusted(
    ours: Iterable[Backup], manifest_of: Callable[[Backup], dict | None], key: bytes, now: datetime
) -> Backup | None:
    """The trusted backup that finished last by its signed manifest, skipping names dated in the future."""
    best: tuple[datetime, Backup] | None = None
    for backup in ours:
        if dated_in_future(backup, now) or not backup.has_manifest:
            continue
        found = provenance_of(backup, manifest_of(backup), key)
        finished = found.finished_at
        if not found.trusted or finished is None or finished > now + CLOCK_SKEW:
            continue
        if best is None or finished > best[0]:
            best = (finished, backup)
    return best[1] if best else None


def manifest_time(value: object) -> datetime | None:
    """A manifest's time field as a moment, or None when it is missing, malformed or has no zone."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
