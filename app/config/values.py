"""What settings are made of: a target, the sign-in provider, the roles and events they name,
and the error every reader of the environment or TARGETS_FILE raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from app.adapters.postgres import TargetDatabase

ROLES = ("viewer", "operator", "admin")
ENVIRONMENT_COLOR_NAMES = ("red", "amber", "green", "blue", "purple", "neutral")
DEFAULT_ENVIRONMENT_COLORS = {"production": "red", "staging": "amber"}
TARGET_ROLES = ("none", *ROLES)  # a per-target role; "none" hides the target from the user
# What can be notified (NOTIFY_EVENTS narrows it); app/domain/alerts.py sends them.
NOTIFY_EVENTS = ("backup-failed", "restore-failed", "verify-failed", "restore-finished", "stale-backup", "size-drop",
                 "copy-failed")  # fmt: skip
JOB_MAX_DEFAULT = 7 * 24 * 3600  # a week: far past any backup or restore that is still moving
# The settings an admin may change on the settings page, and the variable that sets each on the server (and
# locks it there). Those of a target may also be keys of its TARGETS_FILE table, which lock them too.
EDITABLE_PER_TARGET = {
    "backup_schedule": "BACKUP_SCHEDULE", "verify_schedule": "VERIFY_SCHEDULE",
    "max_backup_files": "MAX_BACKUP_FILES", "retention_daily": "RETENTION_DAILY",
    "retention_weekly": "RETENTION_WEEKLY", "retention_monthly": "RETENTION_MONTHLY",
}  # fmt: skip
EDITABLE_FOR_ALL = {"notify_urls": "NOTIFY_URLS", "notify_events": "NOTIFY_EVENTS"}
EDITABLE_VARIABLES = {**EDITABLE_PER_TARGET, **EDITABLE_FOR_ALL}


class ConfigError(Exception):
    """A setting is missing or malformed; str() is the one line shown to the operator."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class CopyStore:
    """A second store a target's backups are copied to (a `[stores.NAME]` table of TARGETS_FILE, named by a
    target's `copies`). What it leaves out of the S3 settings is the console's (AWS_REGION, S3_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID...); its keys are only ever named in the file (`*_env`)."""

    name: str
    storage_url: str
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Target:
    """One database the console backs up and restores, with what is its own: where its backups go,
    the names they get, its passkey, schedules, retention and alerts.

    The fields after `database` carry the names of the `Settings` fields they become in
    `Settings.for_target`, so every rule written against `Settings` works per target unchanged.
    """

    name: str
    database: TargetDatabase
    app_env: str  # the target's environment, as in its backups' names
    app_name: str
    storage_url: str
    restore_passkey: str | None = field(default=None, repr=False)
    restore_passkey_hash: str | None = field(default=None, repr=False)
    backup_schedule: str | None = None
    verify_schedule: str | None = None
    max_backup_files: int = 30
    retention_daily: int = 0
    retention_weekly: int = 0
    retention_monthly: int = 0
    backup_max_age_hours: int = 26
    alert_webhook_url: str | None = field(default=None, repr=False)
    alert_email_to: tuple[str, ...] = ()
    encryption_recipients: tuple[str, ...] = ()  # age public keys; empty: this target's backups stay plain
    copies: tuple[CopyStore, ...] = ()  # where each backup is copied after it is written (3-2-1), in order
    # The editable settings (EDITABLE_VARIABLES' names) the server sets explicitly for this target, in the
    # environment or its TARGETS_FILE table: the settings page shows them locked.
    server_set: frozenset[str] = frozenset()


# The fields of a target that `Settings.for_target` copies into the settings.
PER_TARGET_FIELDS = tuple(f.name for f in fields(Target) if f.name not in ("name", "database"))


class UnknownTarget(LookupError):
    """No target of this name is configured."""


@dataclass(frozen=True)
class OidcSettings:
    """Single sign-on through one OpenID Connect provider (the OIDC_* variables)."""

    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False)
    scopes: str = "openid email profile"
    username_claim: str = "preferred_username"
    roles_claim: str = "groups"
    # (group, role) pairs from OIDC_ROLE_MAP; the group "*" stands for everyone the provider signs in.
    role_map: tuple[tuple[str, str], ...] = ()
    button_text: str = "Sign in with SSO"
    session_hours: int = 12

    def role_for(self, groups: list[str]) -> str | None:
        """The highest role any of `groups` maps to ("*" maps everyone), or None: refused."""
        mapped = [role for group, role in self.role_map if group == "*" or group in groups]
        return max(mapped, key=ROLES.index, default=None)
