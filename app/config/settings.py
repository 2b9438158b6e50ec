"""Settings, read once from the environment (12-factor).

Every variable is named in README.md and `.env.example`. A missing or malformed value raises
`ConfigError`, whose message is one line naming the variable and what is wrong; the entry
points (`wsgi.py`, the CLI) print that line and exit instead of showing a traceback.
`app/config/environment.py` reads the variables, `app/config/targets_file.py` the TARGETS_FILE,
`app/config/values.py` holds the parts (targets, sign-in provider, roles) and `ConfigError`.

This module imports neither Flask nor RQ, so the worker and the domain can use it too.
"""

from __future__ import annotations

import hashlib
import hmac
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from app.adapters.postgres import TargetDatabase
from app.config.environment import settings_values
from app.config.values import (
    DEFAULT_ENVIRONMENT_COLORS,
    JOB_MAX_DEFAULT,
    NOTIFY_EVENTS,
    PER_TARGET_FIELDS,
    CopyStore,
    OidcSettings,
    Target,
    UnknownTarget,
)


@dataclass(frozen=True)
class Settings:
    secret_key: str = field(repr=False)
    app_env: str
    app_name: str
    target: TargetDatabase
    storage_url: str
    aws_region: str
    s3_endpoint_url: str | None
    s3_addressing_style: str
    aws_access_key_id: str | None = field(repr=False)
    aws_secret_access_key: str | None = field(repr=False)
    redis_url: str = field(repr=False)  # may hold a password
    redis_namespace: str
    restore_passkey: str | None = field(repr=False)
    restore_passkey_hash: str | None = field(repr=False)
    max_backup_files: int
    recent_check_minutes: int
    job_timeout_seconds: int  # a job that reports no progress for this long is stopped
    display_timezone: str
    console_database_url: str
    session_cookie_secure: bool
    trusted_proxies: int
    backup_compression: str
    restore_jobs: int
    keep_old_database: bool
    instance_path: str
    backup_schedule: str | None = None
    verify_schedule: str | None = None
    retention_daily: int = 0
    # Role password hashes in the manifest (a viewer can download manifests, so off by default).
    backup_role_passwords: bool = False
    retention_weekly: int = 0
    retention_monthly: int = 0
    alert_webhook_url: str | None = None
    alert_email_to: tuple[str, ...] = ()
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "pgconsole@localhost"
    smtp_starttls: bool = True
    # Apprise URLs (NOTIFY_URLS); they carry tokens and passwords, so never in a repr.
    notify_urls: tuple[str, ...] = field(default=(), repr=False)
    notify_events: tuple[str, ...] = NOTIFY_EVENTS
    public_url: str | None = None  # the console's address as people reach it, for links in messages
    metrics_token: str | None = field(default=None, repr=False)
    backup_max_age_hours: int = 26
    backup_min_interval_seconds: int = 60  # between manual backups; 0 turns the limit off
    backup_list_cache_seconds: int = 5  # the bucket listing shared in Redis by pages and API; 0 is off
    size_drop_alert_percent: int = 50
    # The hard ceiling on one job's length, however well it progresses (JOB_MAX_SECONDS).
    job_max_seconds: int = JOB_MAX_DEFAULT
    s3_max_parts: int = 10_000  # S3_MAX_PARTS: the store's limit on one upload's parts
    s3_max_part_size: int = 5 * 1024**3  # S3_MAX_PART_SIZE: and on one part's size
    restore_tmp_dir: str = field(default_factory=tempfile.gettempdir)  # RESTORE_TMP_DIR
    # How long a restore keeps the database it replaced (closed, for "Swap back") once its safety backup
    # is checked, before dropping it (RESTORE_KEEP_PREVIOUS); 0: dropped at once.
    restore_keep_previous_seconds: int = 0
    # Folders searched for pg_dump/pg_restore before the usual places (PG_BIN_DIRS).
    pg_bin_dirs: tuple[str, ...] = ()
    # Signs manifests; the consoles of a team's environments share it (BACKUP_SIGNING_KEY).
    backup_signing_key: str | None = field(default=None, repr=False)
    # Every target (TARGETS_FILE, or the one made from the variables above). The target-specific
    # fields above (app_env, target, storage_url, ...) are those of `target_name`'s target.
    targets: tuple[Target, ...] = ()
    target_name: str = ""
    default_target: str = ""
    # age recipients (public keys) every new backup is encrypted to; empty: backups stay plain.
    encryption_recipients: tuple[str, ...] = ()
    # The stores this target's backups are copied to (TARGETS_FILE's `copies`), in order.
    copies: tuple[CopyStore, ...] = ()
    # The workers' age identity file (private keys), read only when a restore or verify decrypts.
    encryption_identity_file: str | None = None
    # Sign-in: single sign-on through an OpenID Connect provider, and who may use the password form.
    oidc: OidcSettings | None = None
    local_login: str = "enabled"  # enabled | admins | disabled
    require_2fa: str = "admins"  # none | admins | all: which local accounts must have two-factor codes
    # A browser session ends after this long without a request (SESSION_IDLE_MINUTES), and this long
    # after sign-in whatever happens (SESSION_MAX_HOURS).
    session_idle_minutes: int = 60
    session_max_hours: int = 12
    # Environment -> colour of its bar and badges (ENVIRONMENT_COLORS), over the defaults.
    environment_colors: tuple[tuple[str, str], ...] = ()
    # The editable settings (EDITABLE_VARIABLES) the server sets explicitly for this target: an admin sees
    # them locked on the settings page, and a value stored there does not override them.
    server_set: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, instance_path: str | None = None) -> Settings:
        """The settings of `env` (default: this process's environment); ConfigError names what is wrong."""
        return cls(**settings_values(env, instance_path))

    @property
    def several_targets(self) -> bool:
        return len(self.targets) > 1

    def find_target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise UnknownTarget(name)

    def for_target(self, name: str | None) -> Settings:
        """These settings as one target sees them (None: the default target); UnknownTarget if none has that name."""
        name = name or self.default_target
        if name == self.target_name:
            return self
        target = self.find_target(name)
        return replace(self, target_name=target.name, target=target.database,
                       **{key: getattr(target, key) for key in PER_TARGET_FIELDS})  # fmt: skip

    @property
    def lock_name(self) -> str:
        """What the database lock is keyed on: host, port and name, so two targets on one database share
        it. With one target only its name (one database; a running job's lock keeps its key on upgrade)."""
        if not self.several_targets:
            return self.target.dbname
        return f"{self.target.host}:{self.target.port}/{self.target.dbname}"

    @property
    def key_prefix(self) -> str:
        """The Redis prefix of this target's own state (last backup, stale alert, schedule slots)."""
        return self.redis_namespace if not self.several_targets else f"{self.redis_namespace}:target:{self.target_name}"

    @property
    def second_factor_key(self) -> bytes:
        """32 bytes derived from SECRET_KEY that encrypt the two-factor secrets in the console store."""
        return hmac.new(self.secret_key.encode(), b"pgconsole second factor key v1", hashlib.sha256).digest()

    @property
    def stored_secrets_key(self) -> bytes:
        """32 bytes derived from SECRET_KEY that encrypt the secrets an admin stores on the settings page."""
        return hmac.new(self.secret_key.encode(), b"pgconsole stored settings key v1", hashlib.sha256).digest()

    def color_of(self, environment: str | None) -> str:
        """The colour an environment is shown in: ENVIRONMENT_COLORS, else production red, staging amber."""
        chosen = dict(self.environment_colors)
        return chosen.get(environment or "", DEFAULT_ENVIRONMENT_COLORS.get(environment or "", "neutral"))

    @property
    def signing_key(self) -> bytes:
        """BACKUP_SIGNING_KEY, or a key derived from SECRET_KEY (so one secret is enough for one console)."""
        if self.backup_signing_key:
            return self.backup_signing_key.encode()
        return hmac.new(self.secret_key.encode(), b"pgconsole manifest signing key v1", hashlib.sha256).digest()

    @property
    def restore_enabled(self) -> bool:
        return bool(self.restore_passkey or self.restore_passkey_hash)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)
