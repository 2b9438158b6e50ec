"""Which backups retention deletes: per environment, newest N completed backups kept."""

from __future__ import annotations

from app.domain.catalog import Backup
from app.domain.naming import DUMP_SUFFIX


def expired_backups(
    backups: list[Backup], app_name: str, environment: str, keep: int, just_made: str | None = None
) -> list[Backup]:
    """Backups of this app and environment beyond the newest `keep`, oldest last.

    Only files named by this console's format for this environment count (another team's or
    another environment's files in a shared bucket are never touched), and the backup just
    made is never among them, whatever its clock says.
    """
    mine = [
        b
        for b in backups
        if b.environment == environment and b.app_name == app_name and b.filename.endswith(DUMP_SUFFIX)
    ]
    mine.sort(key=lambda b: (b.filename == just_made, b.created_at, b.filename), reverse=True)
    return [b for b in mine[keep:] if b.filename != just_made]
