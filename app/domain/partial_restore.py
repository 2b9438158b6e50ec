"""Restoring only some tables of a backup, into a new database: which entries of the archive stay.

The rule, read from the archive's own table of contents (`pg_restore --list --verbose`, with each entry's
dependencies), never from what the request or a manifest says:

- every chosen table stays, with what hangs on it: its data, indexes, constraints, triggers, policies,
  defaults, comments, grants and the sequences it owns;
- every other table, view, materialized view and foreign table goes, with every entry that depends on one
  of them (their data, indexes, triggers, the sequences they own, views over them);
- everything else stays whole (schemas, types, domains, functions, extensions, standalone sequences,
  large objects): a chosen table may need any of it, and none of it holds a table's rows;
- a foreign key between a chosen table and one left out cannot hold, so it goes too, and the job page
  names it.

Into the live database, a partial restore is refused: see docs/restore.md ("Part of a backup").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.domain.archive import ArchiveContents, Entry
from app.domain.restore_database import RestoreRefused

INTO_LIVE_REFUSED = ("Only some tables can be restored into a new database, not into the live one: restore them "
                     "into a new database, then copy what you need")  # fmt: skip
RELATIONS = ("TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE")
MAX_TABLES = 2000  # a request naming more is refused before it is stored
NAME_MAX = 300  # "schema.table", each part at most 63 bytes in PostgreSQL, quoted names aside


@dataclass(frozen=True)
class PartialRestore:
    """The entries a partial restore comments out of pg_restore's list, and what it says of them."""

    tables: tuple[str, ...]  # the chosen tables, "schema.table"
    left_out: frozenset[str]  # lines of the list, as given
    dropped_foreign_keys: tuple[str, ...]  # "shop.orders: orders_customer_id_fkey", between chosen and left out

    @property
    def note(self) -> str | None:
        """What the job page says of the foreign keys that were dropped, or None."""
        if not self.dropped_foreign_keys:
            return None
        shown = ", ".join(self.dropped_foreign_keys[:10]) + (" …" if len(self.dropped_foreign_keys) > 10 else "")
        return (f"{len(self.dropped_foreign_keys)} foreign key(s) to a table that was not chosen were "
                f"left out: {shown}")  # fmt: skip


def table_name(entry: Entry) -> str:
    """The name of a TABLE entry, "schema.table" ("TABLE shop orders owner" → "shop.orders")."""
    schema, _, rest = entry.described.removeprefix(entry.kind + " ").partition(" ")
    return f"{schema}.{rest.rsplit(' ', 1)[0]}"


def tables_in(contents: ArchiveContents) -> list[str]:
    """Every table of the archive, "schema.table", in its order."""
    return [table_name(e) for e in contents.entries if e.kind == "TABLE"]


def selection_problem(tables: object) -> str | None:
    """Why `tables` (from a request) is not a list of table names, in words; None when it is."""
    if not isinstance(tables, list) or not tables:
        return 'tables must be a non-empty list of "schema.table" names'
    if len(tables) > MAX_TABLES:
        return f"at most {MAX_TABLES} tables may be chosen"
    if not all(isinstance(t, str) and "." in t and 0 < len(t) <= NAME_MAX for t in tables):
        return 'each of tables must be a "schema.table" name'
    return None


def plan(contents: ArchiveContents, chosen: Iterable[str]) -> PartialRestore:
    """The entries to leave out for restoring only the `chosen` tables; refused (nothing touched) when one of
    them is not a table of this archive: the names come from a request, the archive is the authority."""
    wanted = sorted(set(chosen))
    tables = {table_name(e): e for e in contents.entries if e.kind == "TABLE"}
    unknown = [name for name in wanted if name not in tables]
    if not wanted or unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise RestoreRefused(f"the backup holds no table {shown}; choose among its tables, nothing was changed"
                             if unknown else "choose at least one table; nothing was changed")  # fmt: skip
    kept = {tables[name].dump_id for name in wanted}
    by_id = {e.dump_id: e for e in contents.entries}
    out = {e.dump_id for e in contents.entries if e.kind in RELATIONS and e.dump_id not in kept}
    for entry in contents.entries:  # a sequence owned by a table left out goes with it
        if entry.kind == "SEQUENCE OWNED BY" and out.intersection(entry.depends):
            out.update(i for i in entry.depends if i in by_id and by_id[i].kind == "SEQUENCE")
    dropped = []
    grew = True
    while grew:  # until nothing more depends on what is left out (dependencies may come later in the list)
        grew = False
        for entry in contents.entries:
            if entry.dump_id not in out and out.intersection(entry.depends):
                out.add(entry.dump_id)
                grew = True
                if entry.kind == "FK CONSTRAINT" and kept.intersection(entry.depends):
                    dropped.append(_constraint_name(entry))
    return PartialRestore(tuple(wanted), frozenset(by_id[i].line for i in out), tuple(sorted(dropped)))


def _constraint_name(entry: Entry) -> str:
    """A foreign key's table and name ("FK CONSTRAINT shop orders orders_customer_id_fkey owner" →
    "shop.orders: orders_customer_id_fkey")."""
    schema, _, rest = entry.described.removeprefix(entry.kind + " ").partition(" ")
    table, _, name = rest.rsplit(" ", 1)[0].partition(" ")
    return f"{schema}.{table}: {name}"
