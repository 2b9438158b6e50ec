"""Settings, read once from the environment (12-factor).

Every variable is named in README.md and `.env.example`. A missing or malformed value raises
`ConfigError`, whose message is one line naming the variable and what is wrong; the entry
points (`wsgi.py`, the CLI) print that line and exit instead of showing a traceback.

This module imports neither Flask nor RQ, so the worker and the domain can use it too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.adapters.postgres import TargetDatabase

ROLES = ("viewer", "operator", "admin")
ENVIRONMENT_COLOR_NAMES = ("red", "amber", "green", "blue", "purple", "neutral")
DEFAULT_ENVIRONMENT_COLORS = {"production": "red", "staging": "amber"}
TARGET_ROLES = ("none", *ROLES)  # a per-target role; "none" hides the target from the user
_TARGET_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
# What can be notified (NOTIFY_EVENTS narrows it); app/domain/alerts.py sends them.
NOTIFY_EVENTS = ("backup-failed", "restore-failed", "verify-failed", "restore-finished", "stale-backup", "size-drop")
JOB_MAX_DEFAULT = 7 * 24 * 3600  # a week: far past any backup or restore that is still moving
_ENV_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_APP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}$")


class ConfigError(Exception):
    """A setting is missing or malformed; str() is the one line shown to the operator."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


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


_PER_TARGET = tuple(f.name for f in fields(Target) if f.name not in ("name", "database"))


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
    # Folders searched for pg_dump/pg_restore before the usual places (PG_BIN_DIRS).
    pg_bin_dirs: tuple[str, ...] = ()
    # Signs manifests; the consoles of a team's environments share it (BACKUP_SIGNING_KEY).
    backup_signing_key: str | None = field(default=None, repr=False)
    # Every target (TARGETS_FILE, or the one made from the variables above). The target-specific
    # fields above (app_env, target, storage_url, ...) are those of `target_name`'s target.
    targets: tuple[Target, ...] = ()
    target_name: str = ""
    default_target: str = ""

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
                       **{key: getattr(target, key) for key in _PER_TARGET})  # fmt: skip

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
    # age recipients (public keys) every new backup is encrypted to; empty: backups stay plain.
    encryption_recipients: tuple[str, ...] = ()
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

    @property
    def second_factor_key(self) -> bytes:
        """32 bytes derived from SECRET_KEY that encrypt the two-factor secrets in the console store."""
        return hmac.new(self.secret_key.encode(), b"pgconsole second factor key v1", hashlib.sha256).digest()

    # Environment -> colour of its bar and badges (ENVIRONMENT_COLORS), over the defaults.
    environment_colors: tuple[tuple[str, str], ...] = ()

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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, instance_path: str | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        instance = instance_path or env.get("INSTANCE_PATH") or str(Path.cwd() / "instance")
        app_env = env.get("APP_ENV", "development").strip() or "development"
        if not _ENV_NAME.match(app_env):
            raise ConfigError("APP_ENV", f"must be letters, digits or '_' (got {app_env!r})")

        secret_key = env.get("SECRET_KEY", "")
        if not secret_key and app_env not in ("development", "test"):
            raise ConfigError("SECRET_KEY", f"is required when APP_ENV is {app_env!r}")

        targets_file = env.get("TARGETS_FILE", "").strip()
        if targets_file:
            targets, default = _targets_from_file(targets_file, env)
        else:
            targets = (_target_from_env(env, app_env, Path(instance, "backups").as_uri()),)
            default = targets[0].name
        first = next(t for t in targets if t.name == default)
        if not secret_key:
            serious = next((t.app_env for t in targets if t.app_env not in ("development", "test")), None)
            if serious:
                raise ConfigError("SECRET_KEY", f"is required when a target's environment is {serious!r}")
            secret_key = secrets.token_hex(32)

        zone = env.get("DISPLAY_TIMEZONE", "Asia/Kolkata").strip()
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("DISPLAY_TIMEZONE", f"unknown time zone {zone!r} (e.g. Asia/Kolkata)") from None

        compression = env.get("BACKUP_COMPRESSION", "auto").strip().lower()
        if not re.fullmatch(r"auto|none|gzip(:[0-9])?|zstd(:[0-9]{1,2})?|lz4(:[0-9]{1,2})?", compression):
            raise ConfigError("BACKUP_COMPRESSION", f"use auto, none, gzip:N, zstd:N or lz4 (got {compression!r})")

        job_timeout = _int(env, "JOB_TIMEOUT_SECONDS", 300, minimum=5)

        redis_url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")

        return cls(
            secret_key=secret_key,
            target=first.database,
            **{key: getattr(first, key) for key in _PER_TARGET},
            aws_region=env.get("AWS_REGION", "ap-south-1"),
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            s3_addressing_style=_choice(env, "S3_ADDRESSING_STYLE", ("auto", "path", "virtual")),
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_KEY") or None,
            redis_url=redis_url,
            redis_namespace=env.get("REDIS_NAMESPACE", "pgconsole"),
            recent_check_minutes=_int(env, "BACKUP_RECENT_CHECK_MINUTES", 5, minimum=1),
            job_timeout_seconds=job_timeout,
            job_max_seconds=_job_max_seconds(env, job_timeout),
            display_timezone=zone,
            console_database_url=env.get("CONSOLE_DATABASE_URL") or f"sqlite:///{Path(instance, 'console.sqlite3')}",
            # Served over HTTPS (PUBLIC_URL says so): Secure cookies and HSTS unless explicitly turned off.
            session_cookie_secure=_bool(env, "SESSION_COOKIE_SECURE", (env.get("PUBLIC_URL") or "").strip().lower()
                                        .startswith("https://")),  # fmt: skip
            trusted_proxies=_int(env, "TRUSTED_PROXIES", 0, minimum=0, maximum=10),
            backup_compression=compression,
            restore_jobs=_int(env, "RESTORE_JOBS", os.cpu_count() or 1, minimum=1),
            keep_old_database=_bool(env, "KEEP_OLD_DATABASE", False),
            backup_role_passwords=_bool(env, "BACKUP_ROLE_PASSWORDS", False),
            instance_path=instance,
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=_int(env, "SMTP_PORT", 587, minimum=1, maximum=65535),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_from=env.get("SMTP_FROM", "pgconsole@localhost"),
            smtp_starttls=_bool(env, "SMTP_STARTTLS", True),
            notify_urls=_notify_urls(env),
            notify_events=_notify_events(env),
            public_url=(_http_url(env, "PUBLIC_URL") or "").rstrip("/") or None,
            metrics_token=env.get("METRICS_TOKEN") or None,
            backup_min_interval_seconds=_int(env, "BACKUP_MIN_INTERVAL_SECONDS", 60, minimum=0),
            backup_list_cache_seconds=_int(env, "BACKUP_LIST_CACHE_SECONDS", 5, minimum=0, maximum=300),
            size_drop_alert_percent=_int(env, "SIZE_DROP_ALERT_PERCENT", 50, minimum=1, maximum=100),
            pg_bin_dirs=_bin_dirs(env),
            backup_signing_key=_signing_key(env),
            environment_colors=_environment_colors(env),
            targets=targets,
            target_name=first.name,
            default_target=default,
            encryption_identity_file=env.get("BACKUP_ENCRYPTION_IDENTITY_FILE", "").strip() or None,
            session_idle_minutes=_int(env, "SESSION_IDLE_MINUTES", 60, minimum=1, maximum=7 * 24 * 60),
            session_max_hours=_int(env, "SESSION_MAX_HOURS", 12, minimum=1, maximum=31 * 24),
            **_sign_in(env),
        )


def _sign_in(env: Mapping[str, str]) -> dict:
    """OIDC_*, LOCAL_LOGIN and REQUIRE_2FA."""
    local_login = _choice(env, "LOCAL_LOGIN", ("enabled", "admins", "disabled"))
    require_2fa = env.get("REQUIRE_2FA", "").strip().lower() or "admins"
    if require_2fa not in ("none", "admins", "all"):
        raise ConfigError("REQUIRE_2FA", f"must be one of none, admins, all (got {require_2fa!r})")
    issuer = env.get("OIDC_ISSUER", "").strip().rstrip("/")
    if not issuer:
        if local_login == "disabled":
            raise ConfigError("LOCAL_LOGIN", "is disabled but OIDC_ISSUER is not set: nobody could sign in")
        return {"oidc": None, "local_login": local_login, "require_2fa": require_2fa}
    if urlsplit(issuer).scheme not in ("http", "https") or not urlsplit(issuer).netloc:
        raise ConfigError("OIDC_ISSUER", f"must be the provider's https:// URL (got {issuer!r})")
    client_id = env.get("OIDC_CLIENT_ID", "").strip()
    if not client_id:
        raise ConfigError("OIDC_CLIENT_ID", "is required when OIDC_ISSUER is set")
    scopes = " ".join(env.get("OIDC_SCOPES", "").split()) or "openid email profile"
    if "openid" not in scopes.split():
        raise ConfigError("OIDC_SCOPES", f"must include openid (got {scopes!r})")
    oidc = OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=env.get("OIDC_CLIENT_SECRET") or None,
        scopes=scopes,
        username_claim=env.get("OIDC_USERNAME_CLAIM", "").strip() or "preferred_username",
        roles_claim=env.get("OIDC_ROLES_CLAIM", "").strip() or "groups",
        role_map=_role_map(env),
        button_text=env.get("OIDC_BUTTON_TEXT", "").strip() or "Sign in with SSO",
        session_hours=_int(env, "OIDC_SESSION_HOURS", 12, minimum=1, maximum=24 * 30),
    )
    return {"oidc": oidc, "local_login": local_login, "require_2fa": require_2fa}


def _role_map(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """OIDC_ROLE_MAP: group=role pairs separated by commas, e.g. dba=admin,developers=operator,*=viewer."""
    raw = env.get("OIDC_ROLE_MAP", "").strip()
    if not raw:
        raise ConfigError("OIDC_ROLE_MAP", "is required when OIDC_ISSUER is set, e.g. dba=admin,developers=operator")
    pairs = []
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        group, _, role = (x.strip() for x in item.rpartition("="))
        if not group or role not in ROLES:
            raise ConfigError("OIDC_ROLE_MAP", f"{item!r} is not group=role with a role of {', '.join(ROLES)}")
        pairs.append((group, role))
    return tuple(pairs)


def _signing_key(env: Mapping[str, str]) -> str | None:
    key = env.get("BACKUP_SIGNING_KEY", "")
    if key and len(key) < 32:
        hint = "e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        raise ConfigError("BACKUP_SIGNING_KEY", f"must be at least 32 characters (got {len(key)}); {hint}")
    return key or None


def _per_target_defaults(env: Mapping[str, str]) -> dict:
    """The optional per-target settings, from the environment: a single target's, or every file target's default."""
    return {
        "backup_schedule": _cron(env, "BACKUP_SCHEDULE"),
        "verify_schedule": _cron(env, "VERIFY_SCHEDULE"),
        "max_backup_files": _int(env, "MAX_BACKUP_FILES", 30, minimum=1),
        "retention_daily": _int(env, "RETENTION_DAILY", 0, minimum=0),
        "retention_weekly": _int(env, "RETENTION_WEEKLY", 0, minimum=0),
        "retention_monthly": _int(env, "RETENTION_MONTHLY", 0, minimum=0),
        "backup_max_age_hours": _int(env, "BACKUP_MAX_AGE_HOURS", 26, minimum=1),
        "alert_webhook_url": _http_url(env, "ALERT_WEBHOOK_URL"),
        "alert_email_to": tuple(a.strip() for a in env.get("ALERT_EMAIL_TO", "").split(",") if a.strip()),
        "encryption_recipients": _recipients(env),
    }


def _target_from_env(env: Mapping[str, str], app_env: str, default_storage: str) -> Target:
    """Without TARGETS_FILE: the one target of today's variables, named after APP_ENV."""
    database = _target_database(env)
    app_name = env.get("APP_NAME", "").strip() or database.dbname
    if not _APP_NAME.match(app_name):
        raise ConfigError(
            "APP_NAME", f"must be letters, digits, '.', '_' or '-', not starting with '.' or '-' (got {app_name!r})"
        )
    storage_url = env.get("BACKUP_STORAGE_URL", "").strip() or default_storage
    _check_storage_url(storage_url)
    passkey_hash = env.get("RESTORE_PASSKEY_HASH") or None
    if passkey_hash and not re.fullmatch(r"[0-9a-fA-F]{64}", passkey_hash):
        raise ConfigError("RESTORE_PASSKEY_HASH", "must be the 64 hex digits of the passkey's sha256")
    return Target(
        name=app_env.lower(), database=database, app_env=app_env, app_name=app_name, storage_url=storage_url,
        restore_passkey=env.get("RESTORE_PASSKEY") or None,
        restore_passkey_hash=passkey_hash.lower() if passkey_hash else None,
        **_per_target_defaults(env),
    )  # fmt: skip


# TARGETS_FILE: what each key of a [targets.NAME] table holds. Secrets are only ever named (`*_env`).
_TARGET_KEYS = {
    "environment": "text", "database_url": "text", "password_env": "env", "storage_url": "text",
    "app_name": "text", "restore_passkey_env": "env", "restore_passkey_hash_env": "env",
    "backup_schedule": "cron", "verify_schedule": "cron", "max_backup_files": "count",
    "retention_daily": "count", "retention_weekly": "count", "retention_monthly": "count",
    "backup_max_age_hours": "count", "alert_webhook_url_env": "env", "alert_email_to": "list",
    "encryption_recipients": "list",
}  # fmt: skip
_SECRET_KEYS = ("password", "restore_passkey", "restore_passkey_hash", "alert_webhook_url")


def _targets_from_file(path: str, env: Mapping[str, str]) -> tuple[tuple[Target, ...], str]:
    """The targets of TARGETS_FILE and the default one's name; ConfigError names the target and key."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError("TARGETS_FILE", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("TARGETS_FILE", f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"default", "targets"})
    if unknown:
        raise ConfigError("TARGETS_FILE", f"unknown key {unknown[0]!r} (use default and [targets.NAME] tables)")
    tables = data.get("targets")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("TARGETS_FILE", "names no target: add a [targets.NAME] table")
    defaults = _per_target_defaults(env)
    targets = tuple(_file_target(name, table, env, defaults) for name, table in tables.items())
    seen: dict[tuple[str, str, str], str] = {}
    for target in targets:  # same store, prefix and environment: retention would delete the other's backups
        other = seen.setdefault((target.storage_url.rstrip("/"), target.app_name, target.app_env), target.name)
        if other != target.name:
            raise ConfigError("TARGETS_FILE", f"target {target.name!r}, key 'app_name': its backups would have the "
                                              f"same names as target {other!r}'s in the same storage; give one "
                                              "another app_name or environment")  # fmt: skip
    default = data.get("default", targets[0].name)
    if not isinstance(default, str) or default not in tables:
        raise ConfigError("TARGETS_FILE", f"default = {default!r} is not one of the targets ({', '.join(tables)})")
    return targets, default


def _file_target(name: str, table: object, env: Mapping[str, str], defaults: dict) -> Target:
    def problem(key: str, text: str) -> ConfigError:
        return ConfigError("TARGETS_FILE", f"target {name!r}, key {key!r}: {text}")

    if not _TARGET_NAME.match(name):
        raise ConfigError("TARGETS_FILE", f"target {name!r}: a name is 1 to 40 of a-z, 0-9, '_' and '-'")
    if not isinstance(table, dict):
        raise ConfigError("TARGETS_FILE", f"target {name!r}: must be a table ([targets.{name}])")
    values: dict = {}
    for key, value in table.items():
        if key in _SECRET_KEYS:
            raise problem(key, f"a secret is never written in the file; set {key}_env to the name of an "
                               "environment variable that holds it")  # fmt: skip
        kind = _TARGET_KEYS.get(key)
        if kind is None:
            raise problem(key, f"unknown key (known: {', '.join(_TARGET_KEYS)})")
        if kind == "count":
            least = 0 if key.startswith("retention_") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise problem(key, f"must be a whole number of at least {least} (got {value!r})")
        elif kind == "list":
            value = (value,) if isinstance(value, str) else value
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise problem(key, "must be a list of addresses")
            value = tuple(value)
        elif not isinstance(value, str) or not value.strip():
            raise problem(key, f"must be a non-empty string (got {value!r})")
        if kind == "env":
            if value not in env or not env[value]:
                raise problem(key, f"names the environment variable {value}, which is not set")
            value = env[value]
        if kind == "cron" and (cron := cron_problem(value)):
            raise problem(key, cron)
        if key == "encryption_recipients":
            value = _file_recipients(value, problem)
        values[key] = value
    for required in ("database_url", "storage_url"):
        if required not in values:
            raise problem(required, "is required")
    url = values["database_url"]
    if urlsplit(url).password is not None:
        raise problem("database_url", "holds a password; put it in an environment variable named by password_env")
    try:
        database = _database_from_url(url, "database_url")
    except ConfigError as exc:
        raise problem("database_url", str(exc).split(": ", 1)[1]) from None
    if "password_env" in values:
        database = replace(database, password=values["password_env"])
    try:
        _check_storage_url(values["storage_url"])
    except ConfigError as exc:
        raise problem("storage_url", str(exc).split(": ", 1)[1]) from None
    environment = values.get("environment", name)
    if not _ENV_NAME.match(environment):
        raise problem("environment", f"must be letters, digits or '_' (got {environment!r})")
    app_name = values.get("app_name", database.dbname)
    if not _APP_NAME.match(app_name):
        raise problem("app_name", f"must be letters, digits, '.', '_' or '-' (got {app_name!r})")
    passkey_hash = values.get("restore_passkey_hash_env")
    if passkey_hash and not re.fullmatch(r"[0-9a-fA-F]{64}", passkey_hash):
        raise problem("restore_passkey_hash_env", "its variable must hold the 64 hex digits of the passkey's sha256")
    if "alert_webhook_url_env" in values and urlsplit(values["alert_webhook_url_env"]).scheme not in ("http", "https"):
        raise problem("alert_webhook_url_env", "its variable must hold an http:// or https:// URL")
    return Target(
        name=name, database=database, app_env=environment, app_name=app_name, storage_url=values["storage_url"],
        restore_passkey=values.get("restore_passkey_env"),
        restore_passkey_hash=passkey_hash.lower() if passkey_hash else None,
        **{**defaults, **{k: v for k, v in values.items() if k in defaults},
           "alert_webhook_url": values.get("alert_webhook_url_env", defaults["alert_webhook_url"])},
    )  # fmt: skip


def _database_from_url(url: str, variable: str) -> TargetDatabase:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(variable, "must be a postgresql:// URL")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ConfigError(variable, "names no database (postgresql://user@host:5432/DBNAME)")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigError(variable, "has a port that is not a number") from None
    return TargetDatabase(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=dbname,
    )


def _file_recipients(values: tuple[str, ...], problem) -> tuple[str, ...]:
    """A target's own age recipients (public keys, so they may be written in the file)."""
    from app.adapters.encryption import parse_recipients

    try:
        return tuple(dict.fromkeys(r for value in values for r in parse_recipients(value)))
    except ValueError as exc:
        raise problem("encryption_recipients", str(exc)) from None


def _recipients(env: Mapping[str, str]) -> tuple[str, ...]:
    """BACKUP_ENCRYPTION_RECIPIENTS (comma-separated) and/or the lines of BACKUP_ENCRYPTION_RECIPIENTS_FILE."""
    from app.adapters.encryption import parse_recipients

    found: tuple[str, ...] = ()
    path = env.get("BACKUP_ENCRYPTION_RECIPIENTS_FILE", "").strip()
    sources = [("BACKUP_ENCRYPTION_RECIPIENTS", lambda: env.get("BACKUP_ENCRYPTION_RECIPIENTS", ""))]
    if path:
        sources.append(("BACKUP_ENCRYPTION_RECIPIENTS_FILE", lambda: Path(path).read_text()))
    for name, read in sources:
        try:
            found += parse_recipients(read())
        except OSError as exc:
            raise ConfigError(name, f"cannot read {path} ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None
    if path and not found:
        raise ConfigError("BACKUP_ENCRYPTION_RECIPIENTS_FILE", f"{path} names no recipient")
    return tuple(dict.fromkeys(found))


def _target_database(env: Mapping[str, str]) -> TargetDatabase:
    url = env.get("DATABASE_URL", "").strip()
    if url:
        return _database_from_url(url, "DATABASE_URL")
    dbname = env.get("DB_DATABASE", "").strip()
    if not dbname:
        raise ConfigError("DATABASE_URL", "is not set (nor DB_DATABASE): which database should be backed up?")
    return TargetDatabase(
        host=env.get("DB_HOST", "127.0.0.1"),
        port=_int(env, "DB_PORT", 5432, minimum=1, maximum=65535),
        user=env.get("DB_USERNAME", "postgres"),
        password=env.get("DB_PASSWORD", ""),
        dbname=dbname,
    )


def _bin_dirs(env: Mapping[str, str]) -> tuple[str, ...]:
    """PG_BIN_DIRS: colon-separated absolute folders (a relative one would depend on the worker's cwd)."""
    dirs = tuple(d.strip() for d in env.get("PG_BIN_DIRS", "").split(":") if d.strip())
    for folder in dirs:
        if not folder.startswith("/"):
            raise ConfigError("PG_BIN_DIRS", f"must be absolute folders separated by ':' (got {folder!r})")
    return dirs


def _check_storage_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError("BACKUP_STORAGE_URL", "names no bucket (s3://bucket[/prefix])")
    elif parts.scheme == "file":
        if not parts.path.startswith("/"):
            raise ConfigError("BACKUP_STORAGE_URL", "must be an absolute folder (file:///path)")
    else:
        raise ConfigError("BACKUP_STORAGE_URL", f"must start with s3:// or file:/// (got {url!r})")


def cron_problem(expression: str) -> str | None:
    """Why a cron expression is unusable, or None. Five fields: minute hour day month weekday."""
    from croniter import croniter

    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return f"must be a cron expression of five fields, e.g. '0 2 * * *' (got {expression!r})"
    try:
        croniter(expression).get_next()
    except Exception:  # noqa: BLE001 - croniter raises several kinds for dates that never come
        return f"never fires (got {expression!r}, e.g. the 30th of February)"
    return None


def _cron(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    problem = cron_problem(raw)
    if problem:
        raise ConfigError(name, problem)
    return raw


def _http_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if raw and urlsplit(raw).scheme not in ("http", "https"):
        raise ConfigError(name, "must be an http:// or https:// URL")
    return raw or None


def _notify_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """NOTIFY_URLS: Apprise URLs separated by spaces or commas (Apprise's own splitter, which keeps
    a comma inside a URL, e.g. mailto://…?to=a@x,b@x). The error never quotes a URL: they hold secrets."""
    if not env.get("NOTIFY_URLS", "").strip():
        return ()  # and Apprise (8 MB with requests) stays out of the process
    from apprise.utils.parse import parse_urls

    urls = tuple(parse_urls(env.get("NOTIFY_URLS", "")))
    for n, url in enumerate(urls, 1):
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S*$", url):
            raise ConfigError(
                "NOTIFY_URLS",
                f"entry {n} is not an Apprise URL, or text follows it that is not one (scheme://…, e.g. slack://…)",
            )
    return urls


def _notify_events(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("NOTIFY_EVENTS", "").replace(",", " ").split()
    unknown = [e for e in raw if e not in NOTIFY_EVENTS]
    if unknown:
        raise ConfigError("NOTIFY_EVENTS", f"unknown event {unknown[0]!r}; use some of {', '.join(NOTIFY_EVENTS)}")
    return tuple(e for e in NOTIFY_EVENTS if e in raw) if raw else NOTIFY_EVENTS


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number (got {raw!r})") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(name, f"must be {bounds} (got {value})")
    return value


def _job_max_seconds(env: Mapping[str, str], job_timeout: int) -> int:
    """JOB_MAX_SECONDS: at least JOB_TIMEOUT_SECONDS, or a job would be cut off before it could stall."""
    ceiling = _int(env, "JOB_MAX_SECONDS", JOB_MAX_DEFAULT, minimum=60)
    if ceiling < job_timeout:
        raise ConfigError("JOB_MAX_SECONDS", f"must be at least JOB_TIMEOUT_SECONDS ({job_timeout}) (got {ceiling})")
    return ceiling


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first is the default), case-insensitive."""
    raw = env.get(name, "").strip().lower() or allowed[0]
    if raw not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)} (got {raw!r})")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be true or false (got {raw!r})")


def _environment_colors(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """ENVIRONMENT_COLORS: `production=red,staging=amber,qa=blue`; colours from ENVIRONMENT_COLOR_NAMES."""
    pairs = []
    for item in filter(None, (part.strip() for part in env.get("ENVIRONMENT_COLORS", "").split(","))):
        name, _, color = (x.strip() for x in item.partition("="))
        if not _ENV_NAME.match(name) or color not in ENVIRONMENT_COLOR_NAMES:
            raise ConfigError(
                "ENVIRONMENT_COLORS",
                f"write environment=colour pairs separated by commas, colours {', '.join(ENVIRONMENT_COLOR_NAMES)} "
                f"(got {item!r})",
            )
        pairs.append((name, color))
    return tuple(pairs)
