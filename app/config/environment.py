"""The environment read into the fields of `Settings`: one small reader per concern, each error naming its variable.

Without TARGETS_FILE the one target comes from DATABASE_URL (or DB_*), BACKUP_STORAGE_URL and
the variables around them; with it the targets come from the file and these are their defaults.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.adapters.encryption import parse_recipients
from app.adapters.postgres import TargetDatabase
from app.adapters.storage import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE
from app.config.targets_file import targets_from_file
from app.config.validators import (
    APP_NAME,
    ENV_NAME,
    PASSKEY_HASH,
    check_storage_url,
    database_from_url,
    read_bool,
    read_choice,
    read_cron,
    read_http_url,
    read_int,
    read_size,
)
from app.config.values import (
    EDITABLE_FOR_ALL,
    EDITABLE_PER_TARGET,
    ENVIRONMENT_COLOR_NAMES,
    JOB_MAX_DEFAULT,
    NOTIFY_EVENTS,
    PER_TARGET_FIELDS,
    ROLES,
    ConfigError,
    OidcSettings,
    Target,
)

_COMPRESSION = re.compile(r"auto|none|gzip(:[0-9])?|zstd(:[0-9]{1,2})?|lz4(:[0-9]{1,2})?")


def settings_values(env: Mapping[str, str] | None = None, instance_path: str | None = None) -> dict:
    """Every field of `Settings` read from `env` (default: this process's environment); ConfigError names
    what is wrong."""
    env = dict(os.environ if env is None else env)
    instance = instance_path or env.get("INSTANCE_PATH") or str(Path.cwd() / "instance")
    app_env = _app_env(env)
    secret_key = _secret_key(env, app_env)
    targets, default = _targets(env, app_env, instance)
    for_all = frozenset(name for name, variable in EDITABLE_FOR_ALL.items() if env.get(variable, "").strip())
    targets = tuple(replace(t, server_set=t.server_set | for_all) for t in targets)
    first = next(t for t in targets if t.name == default)
    return dict(
        secret_key=secret_key or _generated_secret_key(targets),
        target=first.database,
        **{key: getattr(first, key) for key in PER_TARGET_FIELDS},
        targets=targets,
        target_name=first.name,
        default_target=default,
        instance_path=instance,
        console_database_url=env.get("CONSOLE_DATABASE_URL") or f"sqlite:///{Path(instance, 'console.sqlite3')}",
        **_display(env),
        **_backups(env),
        **_limits(env),
        **_redis(env),
        **_storage(env),
        **_web(env),
        **_alerts(env),
        **_sign_in(env),
    )


def _app_env(env: Mapping[str, str]) -> str:
    app_env = env.get("APP_ENV", "development").strip() or "development"
    if not ENV_NAME.match(app_env):
        raise ConfigError("APP_ENV", f"must be letters, digits or '_' (got {app_env!r})")
    return app_env


def _secret_key(env: Mapping[str, str], app_env: str) -> str:
    secret_key = env.get("SECRET_KEY", "")
    if not secret_key and app_env not in ("development", "test"):
        raise ConfigError("SECRET_KEY", f"is required when APP_ENV is {app_env!r}")
    return secret_key


def _generated_secret_key(targets: tuple[Target, ...]) -> str:
    """Without SECRET_KEY: a random one, unless a target's environment is more than development or test."""
    serious = next((t.app_env for t in targets if t.app_env not in ("development", "test")), None)
    if serious:
        raise ConfigError("SECRET_KEY", f"is required when a target's environment is {serious!r}")
    return secrets.token_hex(32)


def _targets(env: Mapping[str, str], app_env: str, instance: str) -> tuple[tuple[Target, ...], str]:
    """Every target and the default one's name: TARGETS_FILE's, or the one of the variables."""
    targets_file = env.get("TARGETS_FILE", "").strip()
    if targets_file:
        return targets_from_file(targets_file, env, _per_target_defaults(env))
    target = _target_from_env(env, app_env, Path(instance, "backups").as_uri())
    return (target,), target.name


def _per_target_defaults(env: Mapping[str, str]) -> dict:
    """The optional per-target settings, from the environment: a single target's, or every file target's default."""
    return {
        "backup_schedule": read_cron(env, "BACKUP_SCHEDULE"),
        "verify_schedule": read_cron(env, "VERIFY_SCHEDULE"),
        "max_backup_files": read_int(env, "MAX_BACKUP_FILES", 30, minimum=1),
        "retention_daily": read_int(env, "RETENTION_DAILY", 0, minimum=0),
        "retention_weekly": read_int(env, "RETENTION_WEEKLY", 0, minimum=0),
        "retention_monthly": read_int(env, "RETENTION_MONTHLY", 0, minimum=0),
        "backup_max_age_hours": read_int(env, "BACKUP_MAX_AGE_HOURS", 26, minimum=1),
        "alert_webhook_url": read_http_url(env, "ALERT_WEBHOOK_URL"),
        "alert_email_to": tuple(a.strip() for a in env.get("ALERT_EMAIL_TO", "").split(",") if a.strip()),
        "encryption_recipients": _recipients(env),
        "server_set": frozenset(name for name, var in EDITABLE_PER_TARGET.items() if env.get(var, "").strip()),
    }


def _target_from_env(env: Mapping[str, str], app_env: str, default_storage: str) -> Target:
    """Without TARGETS_FILE: the one target of today's variables, named after APP_ENV."""
    database = _target_database(env)
    app_name = env.get("APP_NAME", "").strip() or database.dbname
    if not APP_NAME.match(app_name):
        raise ConfigError(
            "APP_NAME", f"must be letters, digits, '.', '_' or '-', not starting with '.' or '-' (got {app_name!r})"
        )
    storage_url = env.get("BACKUP_STORAGE_URL", "").strip() or default_storage
    check_storage_url(storage_url)
    passkey_hash = env.get("RESTORE_PASSKEY_HASH") or None
    if passkey_hash and not PASSKEY_HASH.fullmatch(passkey_hash):
        raise ConfigError("RESTORE_PASSKEY_HASH", "must be the 64 hex digits of the passkey's sha256")
    return Target(
        name=app_env.lower(), database=database, app_env=app_env, app_name=app_name, storage_url=storage_url,
        restore_passkey=env.get("RESTORE_PASSKEY") or None,
        restore_passkey_hash=passkey_hash.lower() if passkey_hash else None,
        **_per_target_defaults(env),
    )  # fmt: skip


def _target_database(env: Mapping[str, str]) -> TargetDatabase:
    url = env.get("DATABASE_URL", "").strip()
    if url:
        return database_from_url(url, "DATABASE_URL")
    dbname = env.get("DB_DATABASE", "").strip()
    if not dbname:
        raise ConfigError("DATABASE_URL", "is not set (nor DB_DATABASE): which database should be backed up?")
    return TargetDatabase(
        host=env.get("DB_HOST", "127.0.0.1"),
        port=read_int(env, "DB_PORT", 5432, minimum=1, maximum=65535),
        user=env.get("DB_USERNAME", "postgres"),
        password=env.get("DB_PASSWORD", ""),
        dbname=dbname,
    )


def _recipients(env: Mapping[str, str]) -> tuple[str, ...]:
    """BACKUP_ENCRYPTION_RECIPIENTS (comma-separated) and/or the lines of BACKUP_ENCRYPTION_RECIPIENTS_FILE."""
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


def _display(env: Mapping[str, str]) -> dict:
    """DISPLAY_TIMEZONE and ENVIRONMENT_COLORS."""
    zone = env.get("DISPLAY_TIMEZONE", "Asia/Kolkata").strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("DISPLAY_TIMEZONE", f"unknown time zone {zone!r} (e.g. Asia/Kolkata)") from None
    return {"display_timezone": zone, "environment_colors": _environment_colors(env)}


def _environment_colors(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """ENVIRONMENT_COLORS: `production=red,staging=amber,qa=blue`; colours from ENVIRONMENT_COLOR_NAMES."""
    pairs = []
    for item in filter(None, (part.strip() for part in env.get("ENVIRONMENT_COLORS", "").split(","))):
        name, _, color = (x.strip() for x in item.partition("="))
        if not ENV_NAME.match(name) or color not in ENVIRONMENT_COLOR_NAMES:
            raise ConfigError(
                "ENVIRONMENT_COLORS",
                f"write environment=colour pairs separated by commas, colours {', '.join(ENVIRONMENT_COLOR_NAMES)} "
                f"(got {item!r})",
            )
        pairs.append((name, color))
    return tuple(pairs)


def _backups(env: Mapping[str, str]) -> dict:
    """How backups and restores run: compression, client tools, signing and decryption."""
    compression = env.get("BACKUP_COMPRESSION", "auto").strip().lower()
    if not _COMPRESSION.fullmatch(compression):
        raise ConfigError("BACKUP_COMPRESSION", f"use auto, none, gzip:N, zstd:N or lz4 (got {compression!r})")
    return {
        "backup_compression": compression,
        "recent_check_minutes": read_int(env, "BACKUP_RECENT_CHECK_MINUTES", 5, minimum=1),
        "restore_jobs": read_int(env, "RESTORE_JOBS", os.cpu_count() or 1, minimum=1),
        "keep_old_database": read_bool(env, "KEEP_OLD_DATABASE", False),
        "restore_keep_previous_seconds": _duration(env, "RESTORE_KEEP_PREVIOUS"),
        # Where a restore downloads its archive; without room for it, the archive streams into pg_restore.
        "restore_tmp_dir": _absolute_folder(env, "RESTORE_TMP_DIR", tempfile.gettempdir()),
        "backup_role_passwords": read_bool(env, "BACKUP_ROLE_PASSWORDS", False),
        "pg_bin_dirs": _bin_dirs(env),
        "backup_signing_key": _signing_key(env),
        "encryption_identity_file": env.get("BACKUP_ENCRYPTION_IDENTITY_FILE", "").strip() or None,
    }


_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(env: Mapping[str, str], name: str) -> int:
    """Seconds from `0`, or a whole number and a unit: `90s`, `30m`, `1h`, `2d`."""
    value = env.get(name, "").strip().lower() or "0"
    if value == "0":
        return 0
    found = _DURATION.fullmatch(value)
    if not found:
        raise ConfigError(name, f"write 0, or a whole number with s, m, h or d, e.g. 30m or 1h (got {value!r})")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def _absolute_folder(env: Mapping[str, str], name: str, default: str) -> str:
    folder = env.get(name, "").strip() or default
    if not folder.startswith("/"):
        raise ConfigError(name, f"must be an absolute folder (got {folder!r})")
    return folder


def _bin_dirs(env: Mapping[str, str]) -> tuple[str, ...]:
    """PG_BIN_DIRS: colon-separated absolute folders (a relative one would depend on the worker's cwd)."""
    dirs = tuple(d.strip() for d in env.get("PG_BIN_DIRS", "").split(":") if d.strip())
    for folder in dirs:
        if not folder.startswith("/"):
            raise ConfigError("PG_BIN_DIRS", f"must be absolute folders separated by ':' (got {folder!r})")
    return dirs


def _signing_key(env: Mapping[str, str]) -> str | None:
    key = env.get("BACKUP_SIGNING_KEY", "")
    if key and len(key) < 32:
        hint = "e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        raise ConfigError("BACKUP_SIGNING_KEY", f"must be at least 32 characters (got {len(key)}); {hint}")
    return key or None


def _limits(env: Mapping[str, str]) -> dict:
    """How long a job may run, and how often backups may be asked for."""
    job_timeout = read_int(env, "JOB_TIMEOUT_SECONDS", 300, minimum=5)
    # At least JOB_TIMEOUT_SECONDS, or a job would be cut off before it could stall.
    job_max = read_int(env, "JOB_MAX_SECONDS", JOB_MAX_DEFAULT, minimum=60)
    if job_max < job_timeout:
        raise ConfigError("JOB_MAX_SECONDS", f"must be at least JOB_TIMEOUT_SECONDS ({job_timeout}) (got {job_max})")
    return {
        "job_timeout_seconds": job_timeout,
        "job_max_seconds": job_max,
        "backup_min_interval_seconds": read_int(env, "BACKUP_MIN_INTERVAL_SECONDS", 60, minimum=0),
        "backup_list_cache_seconds": read_int(env, "BACKUP_LIST_CACHE_SECONDS", 5, minimum=0, maximum=300),
    }


def _redis(env: Mapping[str, str]) -> dict:
    redis_url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")
    return {"redis_url": redis_url, "redis_namespace": env.get("REDIS_NAMESPACE", "pgconsole")}


def _storage(env: Mapping[str, str]) -> dict:
    """The S3 client's region, endpoint and keys (the bucket is each target's storage_url)."""
    return {
        "aws_region": env.get("AWS_REGION", "ap-south-1"),
        "s3_endpoint_url": env.get("S3_ENDPOINT_URL") or None,
        "s3_addressing_style": read_choice(env, "S3_ADDRESSING_STYLE", ("auto", "path", "virtual")),
        "aws_access_key_id": env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY") or None,
        "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_KEY") or None,
        # The store's multipart limits (S3's by default; Scaleway allows 1,000 parts): docs/storage.md.
        "s3_max_parts": read_int(env, "S3_MAX_PARTS", MAX_PARTS, minimum=1, maximum=100_000),
        "s3_max_part_size": read_size(env, "S3_MAX_PART_SIZE", MAX_PART_SIZE, minimum=MIN_PART_SIZE),
    }


def _web(env: Mapping[str, str]) -> dict:
    """The console's address, cookies, proxies, sessions and metrics token."""
    https = (env.get("PUBLIC_URL") or "").strip().lower().startswith("https://")
    return {
        "public_url": (read_http_url(env, "PUBLIC_URL") or "").rstrip("/") or None,
        # Served over HTTPS (PUBLIC_URL says so): Secure cookies and HSTS unless explicitly turned off.
        "session_cookie_secure": read_bool(env, "SESSION_COOKIE_SECURE", https),
        "trusted_proxies": read_int(env, "TRUSTED_PROXIES", 0, minimum=0, maximum=10),
        "session_idle_minutes": read_int(env, "SESSION_IDLE_MINUTES", 60, minimum=1, maximum=7 * 24 * 60),
        "session_max_hours": read_int(env, "SESSION_MAX_HOURS", 12, minimum=1, maximum=31 * 24),
        "metrics_token": env.get("METRICS_TOKEN") or None,
    }


def _alerts(env: Mapping[str, str]) -> dict:
    """SMTP_*, NOTIFY_URLS, NOTIFY_EVENTS and SIZE_DROP_ALERT_PERCENT."""
    return {
        "smtp_host": env.get("SMTP_HOST") or None,
        "smtp_port": read_int(env, "SMTP_PORT", 587, minimum=1, maximum=65535),
        "smtp_username": env.get("SMTP_USERNAME") or None,
        "smtp_password": env.get("SMTP_PASSWORD") or None,
        "smtp_from": env.get("SMTP_FROM", "pgconsole@localhost"),
        "smtp_starttls": read_bool(env, "SMTP_STARTTLS", True),
        "notify_urls": _notify_urls(env),
        "notify_events": _notify_events(env),
        "size_drop_alert_percent": read_int(env, "SIZE_DROP_ALERT_PERCENT", 50, minimum=1, maximum=100),
    }


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


def _sign_in(env: Mapping[str, str]) -> dict:
    """OIDC_*, LOCAL_LOGIN and REQUIRE_2FA."""
    local_login = read_choice(env, "LOCAL_LOGIN", ("enabled", "admins", "disabled"))
    require_2fa = env.get("REQUIRE_2FA", "").strip().lower() or "admins"
    if require_2fa not in ("none", "admins", "all"):
        raise ConfigError("REQUIRE_2FA", f"must be one of none, admins, all (got {require_2fa!r})")
    issuer = env.get("OIDC_ISSUER", "").strip().rstrip("/")
    if not issuer and local_login == "disabled":
        raise ConfigError("LOCAL_LOGIN", "is disabled but OIDC_ISSUER is not set: nobody could sign in")
    return {"oidc": _oidc(env, issuer) if issuer else None, "local_login": local_login, "require_2fa": require_2fa}


def _oidc(env: Mapping[str, str], issuer: str) -> OidcSettings:
    """The OIDC_* variables, once OIDC_ISSUER is set."""
    if urlsplit(issuer).scheme not in ("http", "https") or not urlsplit(issuer).netloc:
        raise ConfigError("OIDC_ISSUER", f"must be the provider's https:// URL (got {issuer!r})")
    client_id = env.get("OIDC_CLIENT_ID", "").strip()
    if not client_id:
        raise ConfigError("OIDC_CLIENT_ID", "is required when OIDC_ISSUER is set")
    scopes = " ".join(env.get("OIDC_SCOPES", "").split()) or "openid email profile"
    if "openid" not in scopes.split():
        raise ConfigError("OIDC_SCOPES", f"must include openid (got {scopes!r})")
    return OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=env.get("OIDC_CLIENT_SECRET") or None,
        scopes=scopes,
        username_claim=env.get("OIDC_USERNAME_CLAIM", "").strip() or "preferred_username",
        roles_claim=env.get("OIDC_ROLES_CLAIM", "").strip() or "groups",
        role_map=_role_map(env),
        button_text=env.get("OIDC_BUTTON_TEXT", "").strip() or "Sign in with SSO",
        session_hours=read_int(env, "OIDC_SESSION_HOURS", 12, minimum=1, maximum=24 * 30),
    )


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
