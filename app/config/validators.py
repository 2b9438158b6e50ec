"""Reading one environment variable as a value, with an error that names the variable.

Each reader returns the default for an unset or blank variable and raises `ConfigError` for a
malformed one; the TARGETS_FILE reader reuses the URL checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from app.adapters.postgres import TargetDatabase
from app.config.values import ConfigError
from app.domain.cron import cron_problem

ENV_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")
APP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}$")
PASSKEY_HASH = re.compile(r"[0-9a-fA-F]{64}")


def read_int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
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


_SIZE = re.compile(r"(\d+)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def read_size(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """A number of bytes: plain (`5368709120`) or with a unit (`5GiB`, `500 MiB`, `5GB`)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    match = _SIZE.fullmatch(raw)
    if not match:
        raise ConfigError(name, f"must be a number of bytes, e.g. 5368709120 or 5GiB (got {raw!r})")
    value = int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum:,} and {maximum:,}" if maximum is not None else f"at least {minimum:,}"
        raise ConfigError(name, f"must be {bounds} bytes (got {value:,})")
    return value


def read_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be true or false (got {raw!r})")


def read_choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first is the default), case-insensitive."""
    raw = env.get(name, "").strip().lower() or allowed[0]
    if raw not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)} (got {raw!r})")
    return raw


def read_http_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if raw and urlsplit(raw).scheme not in ("http", "https"):
        raise ConfigError(name, "must be an http:// or https:// URL")
    return raw or None


def read_cron(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    problem = cron_problem(raw)
    if problem:
        raise ConfigError(name, problem)
    return raw


def database_from_url(url: str, variable: str) -> TargetDatabase:
    """The database a postgresql:// URL names; ConfigError names `variable`."""
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


def check_storage_url(url: str) -> None:
    """An s3://bucket[/prefix] or file:///folder URL, or ConfigError naming BACKUP_STORAGE_URL."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError("BACKUP_STORAGE_URL", "names no bucket (s3://bucket[/prefix])")
    elif parts.scheme == "file":
        if not parts.path.startswith("/"):
            raise ConfigError("BACKUP_STORAGE_URL", "must be an absolute folder (file:///path)")
    else:
        raise ConfigError("BACKUP_STORAGE_URL", f"must start with s3:// or file:/// (got {url!r})")
