"""Roles travel with the backup: their definitions in the manifest, and creating the
missing ones before a restore, when an admin chooses it.

The manifest keeps, for each role the database names, its attributes and its memberships among those
roles (what `pg_dumpall --roles-only` would say of them), never a password hash unless
BACKUP_ROLE_PASSWORDS is on: a viewer can download manifests. A restore may create the ones this
server lacks, all in one transaction, only from a manifest signed by this team (a forged one could
otherwise make any role, a password included), and never a superuser: that is a DBA's decision.
"""

from __future__ import annotations

from app.adapters import postgres, roles_sql
from app.adapters.postgres import TargetDatabase
from app.adapters.roles_sql import FLAGS, RoleDefinition


class RolesError(Exception):
    """The roles cannot be created as the backup defines them; nothing was created."""


def definitions_in(manifest: dict | None) -> dict[str, RoleDefinition] | None:
    """Name → definition, as the manifest records them; None when it records none or not in the expected
    shape (a manifest is data from the store: every field is checked for its type)."""
    recorded = manifest.get("role_definitions") if isinstance(manifest, dict) else None
    if not isinstance(recorded, list):
        return None
    found = {}
    for item in recorded:
        definition = _definition(item)
        if definition is None:
            return None
        found[definition.name] = definition
    return found


def _definition(item: object) -> RoleDefinition | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        return None
    if not all(isinstance(item.get(flag, False), bool) for flag in FLAGS):
        return None
    limit, until, password = item.get("connection_limit", -1), item.get("valid_until"), item.get("password")
    members = item.get("member_of", [])
    if type(limit) is not int or not (until is None or isinstance(until, str)):
        return None
    if not (password is None or isinstance(password, str)) or not isinstance(members, list):
        return None
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("admin", False), bool)
               for m in members):  # fmt: skip
        return None
    return RoleDefinition(
        name=item["name"], **{flag: item.get(flag, flag == "inherit") for flag in FLAGS},
        connection_limit=limit, valid_until=until, password=password,
        member_of=tuple((m["role"], m.get("admin", False)) for m in members),
    )  # fmt: skip


def creatable(definitions: dict[str, RoleDefinition] | None) -> frozenset[str]:
    """The roles the console would create from these definitions: not the superuser-only ones."""
    return frozenset(name for name, d in (definitions or {}).items() if not d.superuser_only)


def create_missing(target: TargetDatabase, definitions: dict[str, RoleDefinition], wanted: set[str]) -> list[str]:
    """Create the roles of `wanted` this server lacks, from their definitions, with their memberships among
    the roles the backup names; a console that is not a superuser is made a member of each (so that the
    restore may act as them, as the README asks of it). One transaction: all of them, or none.

    Returns the names created. Refuses (RolesError, nothing created) a role the backup does not define or
    that only a superuser may create.
    """
    with postgres.admin_connect(target) as conn:
        present = roles_sql.existing_roles(conn, sorted(wanted))
        missing = sorted(wanted - present)
        if not missing:
            return []
        undefined = [name for name in missing if name not in definitions]
        if undefined:
            raise RolesError(f"the backup does not define the roles {', '.join(undefined)}; create them yourself")
        special = [n for n in missing if definitions[n].superuser_only]
        if special:
            raise RolesError(f"the roles {', '.join(special)} are superusers (or REPLICATION or BYPASSRLS) in the "
                             "backup; the console does not create those: a superuser must")  # fmt: skip
        join_each = not postgres.is_superuser(conn)
        try:
            roles_sql.create_roles(conn, [definitions[n] for n in missing],
                                   _memberships(definitions, set(missing), present), join_each=join_each)
        except postgres.DatabaseError as exc:
            raise RolesError(f"the roles {', '.join(missing)} could not be created ({str(exc).strip()}); "
                             "none was") from None  # fmt: skip
    return missing


def _memberships(definitions: dict[str, RoleDefinition], created: set[str], present: set[str]
                 ) -> list[tuple[str, str, bool]]:  # fmt: skip
    """(member, role, admin) for the backup's memberships that touch a role created now (memberships among
    roles that both exist already are this server's business) and whose other side exists here."""
    here = created | present
    return [(d.name, role, admin) for d in definitions.values() for role, admin in d.member_of
            if (d.name in created or role in created) and d.name in here and role in here]  # fmt: skip
