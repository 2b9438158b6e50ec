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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROLES = ("viewer", "operator", "admin")
ENVIRONMENT_COLOR_NAMES = ("red", "amber", "green", "blue", "purple", "neutral")
DEFAULT_ENVIRONMENT_COLORS = {"production": "red", "staging": "amber"}
_ENV_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_APP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}$")


class ConfigError(Exception):
    """A setting is missing or malformed; str() is the one line shown to the operator."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class TargetDatabase:
    """The one database this console backs up and restores. Never chosen by a request."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str

    def libpq_env(self) -> dict[str, str]:
        """Connection settings for a pg_dump/pg_restore child: the password stays off argv."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def conninfo(self, dbname: str | None = None) -> dict[str, str | int]:
        """Keyword arguments for psycopg.connect()."""
        kwargs: dict[str, str | int] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname or self.dbname,
            "connect_timeout": 5,
        }
        if self.password:
            kwargs["password"] = self.password
        return kwargs


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
    redis_url: str
    redis_namespace: str
    restore_passkey: str | None = field(repr=False)
    restore_passkey_hash: str | None = field(repr=False)
    max_backup_files: int
    recent_check_minutes: int
    job_timeout_seconds: int
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
    backup_max_age_hours: int = 26
    backup_min_interval_seconds: int = 60  # between manual backups; 0 turns the limit off
    size_drop_alert_percent: int = 50
    # Folders searched for pg_dump/pg_restore before the usual places (PG_BIN_DIRS).
    pg_bin_dirs: tuple[str, ...] = ()
    # Signs manifests; the consoles of a team's environments share it (BACKUP_SIGNING_KEY).
    backup_signing_key: str | None = field(default=None, repr=False)
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
        if not secret_key:
            if app_env not in ("development", "test"):
                raise ConfigError("SECRET_KEY", f"is required when APP_ENV is {app_env!r}")
            secret_key = secrets.token_hex(32)

        target = _target_database(env)
        app_name = env.get("APP_NAME", "").strip() or target.dbname
        if not _APP_NAME.match(app_name):
            raise ConfigError(
                "APP_NAME", f"must be letters, digits, '.', '_' or '-', not starting with '.' or '-' (got {app_name!r})"
            )

        storage_url = env.get("BACKUP_STORAGE_URL", "").strip() or Path(instance, "backups").as_uri()
        _check_storage_url(storage_url)
        zone = env.get("DISPLAY_TIMEZONE", "Asia/Kolkata").strip()
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("DISPLAY_TIMEZONE", f"unknown time zone {zone!r} (e.g. Asia/Kolkata)") from None

        passkey_hash = env.get("RESTORE_PASSKEY_HASH") or None
        if passkey_hash and not re.fullmatch(r"[0-9a-fA-F]{64}", passkey_hash):
            raise ConfigError("RESTORE_PASSKEY_HASH", "must be the 64 hex digits of the passkey's sha256")
        compression = env.get("BACKUP_COMPRESSION", "auto").strip().lower()
        if not re.fullmatch(r"auto|none|gzip(:[0-9])?|zstd(:[0-9]{1,2})?|lz4(:[0-9]{1,2})?", compression):
            raise ConfigError("BACKUP_COMPRESSION", f"use auto, none, gzip:N, zstd:N or lz4 (got {compression!r})")

        redis_url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")

        return cls(
            secret_key=secret_key,
            app_env=app_env,
            app_name=app_name,
            target=target,
            storage_url=storage_url,
            aws_region=env.get("AWS_REGION", "ap-south-1"),
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            s3_addressing_style=_choice(env, "S3_ADDRESSING_STYLE", ("auto", "path", "virtual")),
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_KEY") or None,
            redis_url=redis_url,
            redis_namespace=env.get("REDIS_NAMESPACE", "pgconsole"),
            restore_passkey=env.get("RESTORE_PASSKEY") or None,
            restore_passkey_hash=passkey_hash.lower() if passkey_hash else None,
            max_backup_files=_int(env, "MAX_BACKUP_FILES", 30, minimum=1),
            recent_check_minutes=_int(env, "BACKUP_RECENT_CHECK_MINUTES", 5, minimum=1),
            job_timeout_seconds=_int(env, "JOB_TIMEOUT_SECONDS", 300, minimum=5),
            display_timezone=zone,
            console_database_url=env.get("CONSOLE_DATABASE_URL") or f"sqlite:///{Path(instance, 'console.sqlite3')}",
            session_cookie_secure=_bool(env, "SESSION_COOKIE_SECURE", False),
            trusted_proxies=_int(env, "TRUSTED_PROXIES", 0, minimum=0, maximum=10),
            backup_compression=compression,
            restore_jobs=_int(env, "RESTORE_JOBS", os.cpu_count() or 1, minimum=1),
            keep_old_database=_bool(env, "KEEP_OLD_DATABASE", False),
            instance_path=instance,
            backup_schedule=_cron(env, "BACKUP_SCHEDULE"),
            verify_schedule=_cron(env, "VERIFY_SCHEDULE"),
            retention_daily=_int(env, "RETENTION_DAILY", 0, minimum=0),
            retention_weekly=_int(env, "RETENTION_WEEKLY", 0, minimum=0),
            retention_monthly=_int(env, "RETENTION_MONTHLY", 0, minimum=0),
            alert_webhook_url=_http_url(env, "ALERT_WEBHOOK_URL"),
            alert_email_to=tuple(a.strip() for a in env.get("ALERT_EMAIL_TO", "").split(",") if a.strip()),
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=_int(env, "SMTP_PORT", 587, minimum=1, maximum=65535),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_from=env.get("SMTP_FROM", "pgconsole@localhost"),
            smtp_starttls=_bool(env, "SMTP_STARTTLS", True),
            backup_max_age_hours=_int(env, "BACKUP_MAX_AGE_HOURS", 26, minimum=1),
            backup_min_interval_seconds=_int(env, "BACKUP_MIN_INTERVAL_SECONDS", 60, minimum=0),
            size_drop_alert_percent=_int(env, "SIZE_DROP_ALERT_PERCENT", 50, minimum=1, maximum=100),
            pg_bin_dirs=_bin_dirs(env),
            backup_signing_key=_signing_key(env),
            environment_colors=_environment_colors(env),
        )


def _signing_key(env: Mapping[str, str]) -> str | None:
    key = env.get("BACKUP_SIGNING_KEY", "")
    if key and len(key) < 32:
        hint = "e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        raise ConfigError("BACKUP_SIGNING_KEY", f"must be at least 32 characters (got {len(key)}); {hint}")
    return key or None


def _target_database(env: Mapping[str, str]) -> TargetDatabase:
    url = env.get("DATABASE_URL", "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError("DATABASE_URL", "must be a postgresql:// URL")
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise ConfigError("DATABASE_URL", "names no database (postgresql://user@host:5432/DBNAME)")
        try:
            port = parts.port or 5432
        except ValueError:
            raise ConfigError("DATABASE_URL", "has a port that is not a number") from None
        return TargetDatabase(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=dbname,
        )
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
