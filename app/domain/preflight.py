"""What a restore of a backup would hit on this server, known before the passkey is asked.

DESIGN.md, restore invariant 7: whatever cannot be reproduced is shown before the passkey is asked,
never discovered at the end. The backup's manifest records, at backup time, what a restore needs
(`restore_needs`: the roles the database names, who owns and who granted, event triggers,
extensions only a superuser may create; app/adapters/database_facts.py). The rules here
compare that with the live server's facts and say, in words, what would fail and what to do.

They are advice for the restore page: the job's own preflight (app/domain/restore.py, from the
downloaded archive's table of contents) stays the authority, since a manifest can be forged for an
untrusted file, and a backup made before these facts were recorded has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.adapters import roles_sql
from app.adapters.postgres import TargetDatabase

# Whoever owns the database: never missing, and nobody to act as (the public schema's owner since PG 15).
_IMPLICIT_ROLES = frozenset({"pg_database_owner"})


@dataclass(frozen=True)
class BackupNeeds:
    """What the backup's manifest says a restore of it needs."""

    roles: frozenset[str]
    owners: frozenset[str]
    grantors: frozenset[str]
    event_triggers: tuple[str, ...]
    superuser_extensions: frozenset[str]  # only a superuser could create them where the backup was made
    extensions: tuple[tuple[str, str], ...]  # (name, version)

    @property
    def acted_as(self) -> frozenset[str]:
        """The roles a restore with owners acts as: owners, and grantors (pg_dump replays grants as them)."""
        return (self.owners | self.grantors) - _IMPLICIT_ROLES


@dataclass(frozen=True)
class ServerFacts:
    """This server and the console's role on it, as far as a backup's needs ask."""

    console_role: str
    superuser: bool
    roles: frozenset[str]  # of the roles asked about, those that exist here
    acts_as: frozenset[str]  # of those, the ones the console's role is a member of (may SET ROLE to)
    extension_versions: frozenset[tuple[str, str]]  # (name, version) available to CREATE EXTENSION
    superuser_only: frozenset[tuple[str, str]]  # of those, the ones only a superuser may create


@dataclass(frozen=True)
class Problem:
    text: str  # what would happen, and what to do
    refuses: bool  # the restore would fail (or be refused) with it
    avoided_without_owners: bool = False  # "restore without owners and grants" makes it go away
    avoided_creating_roles: bool = False  # "create the missing roles from the backup" makes it go away


def needs_in(manifest: dict | None) -> BackupNeeds | None:
    """The needs a manifest records; None when it records none (an older backup) or not in the expected shape
    (a manifest is data from the store)."""
    recorded = manifest.get("restore_needs") if isinstance(manifest, dict) else None
    if not isinstance(recorded, dict):
        return None
    lists = {}
    for key in ("roles", "owners", "grantors", "event_triggers", "superuser_extensions"):
        value = recorded.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        lists[key] = value
    extensions = manifest.get("extensions", [])
    if not isinstance(extensions, list):
        return None
    versions = tuple((str(e.get("name") or ""), str(e.get("version") or "")) for e in extensions if isinstance(e, dict))
    return BackupNeeds(
        roles=frozenset(lists["roles"]),
        owners=frozenset(lists["owners"]),
        grantors=frozenset(lists["grantors"]),
        event_triggers=tuple(lists["event_triggers"]),
        superuser_extensions=frozenset(lists["superuser_extensions"]),
        extensions=tuple(v for v in versions if v[0]),
    )


def _names(roles: Iterable[str]) -> str:
    return ", ".join(sorted(roles))


def problems(needs: BackupNeeds, server: ServerFacts, creatable: frozenset[str] = frozenset()) -> list[Problem]:
    """What a restore of a backup with `needs` would hit on `server`, each with what to do; [] when nothing.

    `creatable`: the roles the backup defines that the console would create (app/domain/roles.py)."""
    found = []
    missing = needs.roles - server.roles - _IMPLICIT_ROLES
    if missing:
        create = missing <= creatable
        found.append(Problem(
            f"The backup names roles this server does not have: {_names(missing)}. Create them"
            f"{' (the backup defines them: choose to create the missing roles from it)' if create else ''}, or "
            "restore without owners and grants (every object then belongs to the console's role).",
            refuses=True, avoided_without_owners=True, avoided_creating_roles=create))  # fmt: skip
    foreign = set() if server.superuser else needs.acted_as - missing - server.acts_as
    if foreign:
        found.append(Problem(
            f"The console's role {server.console_role} cannot act as {_names(foreign)}, which own objects or "
            f"granted rights in the backup: GRANT {_names(foreign)} TO {server.console_role}, or restore without "
            "owners and grants.",
            refuses=True, avoided_without_owners=True))  # fmt: skip
    if needs.event_triggers and not server.superuser:
        found.append(Problem(
            f"The backup holds event triggers ({_names(needs.event_triggers)}), which only a superuser can create, "
            f"and the console connects as {server.console_role}, which is not one: restore it as a superuser "
            "(the console connected as one, or pg_restore by hand).",
            refuses=True))  # fmt: skip
    available = {name for name, _ in server.extension_versions}
    for name, version in needs.extensions:
        if name not in available:
            found.append(Problem(
                f"Extension {name} is not installed on this server at any version: install its package on the "
                "server first (pg_restore would fail creating it).", refuses=True))  # fmt: skip
            continue
        at_version = (name, version) in server.extension_versions
        superuser_only = (name, version) in server.superuser_only if at_version else name in needs.superuser_extensions
        if superuser_only and not server.superuser:
            found.append(Problem(
                f"Extension {name} can only be created by a superuser, and the console connects as "
                f"{server.console_role}, which is not one: restore it as a superuser.", refuses=True))  # fmt: skip
        elif not at_version:
            found.append(Problem(
                f"Extension {name} {version} is not available on this server: the restored database gets the "
                "server's default version of it.", refuses=False))  # fmt: skip
    return found


def in_effect(found: list[Problem], *, without_owners: bool, create_roles: bool = False) -> list[Problem]:
    """The problems a restore with this choice would still hit."""
    return [p for p in found if not (without_owners and p.avoided_without_owners)
            and not (create_roles and p.avoided_creating_roles)]  # fmt: skip


def refusing(found: list[Problem], *, without_owners: bool, create_roles: bool = False) -> list[Problem]:
    """The problems that would make a restore with this choice fail."""
    return [p for p in in_effect(found, without_owners=without_owners, create_roles=create_roles) if p.refuses]


def server_facts(target: TargetDatabase, needs: BackupNeeds) -> ServerFacts | None:
    """This server's roles, the console role's superuser flag and memberships, and the extension versions
    available, as far as `needs` asks (one connection); None when the server cannot be asked (the page
    still shows, the job finds out)."""
    found = roles_sql.console_role_facts(target, sorted(needs.roles | needs.acted_as),
                                         sorted({name for name, _ in needs.extensions}))  # fmt: skip
    if found is None:
        return None
    return ServerFacts(
        console_role=found.user,
        superuser=found.superuser,
        roles=frozenset(found.roles),
        acts_as=frozenset(name for name, member in found.roles.items() if member),
        extension_versions=frozenset((name, version) for name, version, _ in found.extension_versions),
        superuser_only=frozenset((name, version) for name, version, only in found.extension_versions if only),
    )
