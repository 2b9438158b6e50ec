"""Which backup is copied to which copy store (TARGETS_FILE's [stores.NAME]), and whether its sha256 was read back
there: the copy job writes it, the list shows it, and a restore whose first store cannot be read uses it.

In the console store (table `backup_copies`), not Redis: whoever can write to Redis must not make a copy look
verified, nor point a restore at a store where the backup was never checked. One row per (target, store,
file): verified (`verified_at` set, `error` empty) or failed (`error` says why); retention's deletes in the copy
store remove their rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.store.models import utcnow


class BackupCopyRecord(db.Model):
    __tablename__ = "backup_copies"
    __table_args__ = (UniqueConstraint("target", "store", "filename", name="uq_backup_copies_target_store_filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(40))  # the target's name; "": the only target
    store: Mapped[str] = mapped_column(String(40))  # the [stores.NAME] table's name
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # as read back from the copy store
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)  # why the last copy failed
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class CopyStatus:
    store: str
    verified: bool
    verified_at: datetime | None  # aware, UTC
    error: str | None


def _row(target: str, store: str, filename: str) -> BackupCopyRecord | None:
    return db.session.execute(
        db.select(BackupCopyRecord).filter_by(target=target, store=store, filename=filename)
    ).scalar_one_or_none()


def record_verified(target: str, store: str, filename: str, sha256: str, size: int) -> None:
    """`filename` is in `store` and reading it back gave `sha256`, the one its manifest holds."""
    row = _row(target, store, filename) or BackupCopyRecord(target=target, store=store, filename=filename)
    row.sha256, row.size, row.error = sha256, size, None
    row.verified_at = row.updated_at = utcnow()
    db.session.add(row)
    db.session.commit()


def record_failed(target: str, store: str, filename: str, error: str) -> None:
    """The copy of `filename` to `store` failed: it is not counted as verified there, whatever an earlier copy did."""
    row = _row(target, store, filename) or BackupCopyRecord(target=target, store=store, filename=filename)
    row.error, row.verified_at, row.updated_at = error[:2000], None, utcnow()
    db.session.add(row)
    db.session.commit()


def forget(target: str, store: str, filenames: list[str]) -> None:
    """Retention deleted these from `store`."""
    if filenames:
        db.session.execute(db.delete(BackupCopyRecord).where(
            BackupCopyRecord.target == target, BackupCopyRecord.store == store,
            BackupCopyRecord.filename.in_(filenames)))  # fmt: skip
        db.session.commit()


def copies_of(target: str, filenames: list[str] | None = None) -> dict[str, list[CopyStatus]]:
    """Each file's copies (of these files, or all), by file name."""
    query = db.select(BackupCopyRecord).filter_by(target=target).order_by(BackupCopyRecord.id)
    if filenames is not None:
        query = query.where(BackupCopyRecord.filename.in_(filenames))
    found: dict[str, list[CopyStatus]] = {}
    for row in db.session.execute(query).scalars():
        verified_at = row.verified_at.replace(tzinfo=UTC) if row.verified_at else None
        found.setdefault(row.filename, []).append(CopyStatus(row.store, verified_at is not None and not row.error,
                                                             verified_at, row.error))  # fmt: skip
    return found


def verified_stores(target: str, filename: str) -> list[str]:
    """The copy stores where `filename` was read back whole and its sha256 matched."""
    return [c.store for c in copies_of(target, [filename]).get(filename, []) if c.verified]
