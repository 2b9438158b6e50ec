"""A dump made elsewhere, uploaded by an admin: checked as it arrives, streamed into the store, and recorded
as **uploaded** (not made by the console).

The name is the console's usual one with the environment `uploaded` (`{APP_NAME}-uploaded-on-…​.dump`), so no
target owns it: retention never deletes it, it never counts as a target's backup (newest, recent, scheduled
verify) and listing shows it with the other files of the store. Its manifest is signed, like a backup's, so the
restore checks the downloaded bytes against the sha256 computed here while it streamed; it also records
`uploaded: true`, who uploaded it, the original file name and, once the worker has read the archive's table of
contents (`check_upload`), its summary. Until then it is "checking…" and cannot be restored.

Only custom-format archives (`pg_dump -Fc`) are taken: plain SQL, gzip or zstd files are refused at once.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from app.adapters.encryption import Digest
from app.adapters.pg_restore import ArchiveError
from app.adapters.storage import Storage, StorageError, Upload
from app.domain.archive import read_contents
from app.domain.catalog import read_manifest, sidecar_names, write_manifest
from app.domain.naming import Owner, both_forms
from app.domain.provenance import SIGNATURE_FIELD, sign

UPLOADED_ENVIRONMENT = "uploaded"
ARCHIVE_MAGIC = b"PGDMP"  # the first bytes of every custom-format archive
_OTHER_KINDS = (
    (b"\x1f\x8b", "it is a gzip file (plain SQL or another format, compressed)"),
    (b"\x28\xb5\x2f\xfd", "it is a zstd file (plain SQL or another format, compressed)"),
    (b"\x89PNG", "it is a PNG image"),
    (b"%PDF", "it is a PDF document"),
    (b"PK\x03\x04", "it is a zip file"),
)
ONLY_CUSTOM_FORMAT = ("The console takes archives made with pg_dump -Fc (custom format) only; plain SQL, gzip, zstd, "
                      "tar and directory dumps are not accepted.")  # fmt: skip
CHECKING = "checking…"


class UploadRefused(Exception):
    """The upload is not a pg_dump archive (or is empty): nothing was stored."""


@dataclass(frozen=True)
class Uploaded:
    filename: str
    size: int
    sha256: str
    original_name: str


def uploaded_owner(app_name: str) -> Owner:
    return Owner(app_name, UPLOADED_ENVIRONMENT)


def is_uploaded(manifest: dict | None) -> bool:
    return isinstance(manifest, dict) and manifest.get("uploaded") is True


def not_an_archive(head: bytes) -> str:
    """Why the first bytes of a file are not a custom-format archive, in words; "" when they are."""
    if head.startswith(ARCHIVE_MAGIC):
        return ""
    if not head:
        return "This is not a pg_dump archive: the file is empty. Nothing was stored."
    what = next((said for magic, said in _OTHER_KINDS if head.startswith(magic)), "it does not begin as one does")
    if head.lstrip().startswith((b"--", b"SET ", b"CREATE ")) or b"PostgreSQL database dump" in head[:4096]:
        what = "it is a plain SQL dump (pg_dump's default format)"
    return f"This is not a pg_dump archive: {what}. {ONLY_CUSTOM_FORMAT} Nothing was stored."


def _first_bytes(chunks: Iterator[bytes]) -> bytes:
    """At least as many bytes as the magic has (fewer only when the file is shorter)."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= len(ARCHIVE_MAGIC):
            break
    return head


def free_name(storage: Storage, owner: Owner, zone: ZoneInfo) -> str:
    """The upload's name at this moment; the next second's when a file (or its encrypted form) already has it."""
    while True:
        name = owner.filename_at(datetime.now(UTC), zone)
        if all(storage.stat(n) is None for n in both_forms(name)):
            return name
        time.sleep(1.0 - time.time() % 1.0)


def store_upload(storage: Storage, owner: Owner, zone: ZoneInfo, chunks: Iterable[bytes], *, original_name: str,
                 uploaded_by: str, signing_key: bytes, expected_bytes: int = 0) -> Uploaded:  # fmt: skip
    """Check the first bytes, then stream `chunks` into the store through its part upload, hashing as they pass,
    and write the signed manifest. UploadRefused, before the store is touched, for anything but an archive; on
    any failure after that the part upload is aborted (and a written file deleted), so nothing is left."""
    blocks = iter(chunks)
    head = _first_bytes(blocks)
    if problem := not_an_archive(head):
        raise UploadRefused(problem)
    filename = free_name(storage, owner, zone)
    part_size = storage.plan_upload(expected_bytes, room_for=expected_bytes)
    digest = Digest()
    upload: Upload | None = None
    started = datetime.now(UTC)
    try:
        upload = storage.begin_upload(filename, part_size)
        for block in _with_head(head, blocks):
            digest.update(block)
            upload.write(block)
        upload.complete()
    except BaseException:
        if upload is not None:
            with contextlib.suppress(StorageError):
                upload.abort()
        raise
    manifest = sign({
        "format": 1, "filename": filename, "sha256": digest.hexdigest(), "size": digest.size,
        "app_name": owner.app_name, "environment": owner.environment, "uploaded": True, "uploaded_by": uploaded_by,
        "original_name": original_name, "requested_by": uploaded_by, "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(), "checked": False,
    }, signing_key)  # fmt: skip
    try:
        write_manifest(storage, filename, manifest)
    except BaseException:
        with contextlib.suppress(StorageError):
            storage.delete(filename)
        raise
    return Uploaded(filename, digest.size, digest.hexdigest(), original_name)


def _with_head(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


@dataclass(frozen=True)
class Checked:
    tables: int
    schemas: int
    entries: int
    database: str | None  # the name it had where it was dumped, when the archive says


def check_upload(storage: Storage, filename: str, *, pg_restore_path: str, env: dict[str, str],
                 signing_key: bytes, folder: str | None = None) -> Checked:  # fmt: skip
    """Read the uploaded archive's table of contents (on the worker, from a copy in its temp folder) and record
    its summary in the signed manifest. ArchiveError when pg_restore cannot read it: the caller
    refuses it with `discard`."""
    manifest = read_manifest(storage, filename)
    if not is_uploaded(manifest):
        raise UploadRefused(f"{filename} is not an uploaded file")
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".dump") as copy:
        for block in storage.open_stream(filename):
            copy.write(block)
        copy.flush()
        contents = read_contents(pg_restore_path, Path(copy.name), env)
    if not contents.entries:  # a header with nothing after it reads as an empty list, not an error
        raise ArchiveError("the archive cannot be read: pg_restore finds no entry in it")
    tables = [e for e in contents.entries if e.kind == "TABLE"]
    # The schemas the tables are in ("TABLE public orders owner"), and any the archive creates.
    schemas = {e.described.split(" ")[1] for e in tables} | {e.tag for e in contents.entries if e.kind == "SCHEMA"}
    found = Checked(
        tables=len(tables),
        schemas=len(schemas),
        entries=len(contents.entries),
        database=contents.database.name if contents.database else None,
    )
    summary = {"tables": found.tables, "schemas": found.schemas, "entries": found.entries}
    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}  # type: ignore[union-attr]
    write_manifest(storage, filename, sign({**unsigned, "checked": True, "contents": summary,
                                            **({"database": found.database} if found.database else {})},
                                           signing_key))  # fmt: skip
    return found


def discard(storage: Storage, filename: str) -> None:
    """Delete a refused upload and its sidecars; a delete that fails is left for the caller's report."""
    storage.delete(filename)
    for sidecar in sidecar_names(filename):
        with contextlib.suppress(StorageError):
            storage.delete(sidecar)


def upload_state(manifest: dict | None) -> str:
    """The words "checking…" until the worker has read the archive, then nothing."""
    return "" if not is_uploaded(manifest) or manifest.get("checked") is True else CHECKING  # type: ignore[union-attr]
