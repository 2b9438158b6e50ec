"""Clients built from settings, shared by the web app and the worker (no Flask, no RQ here)."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from redis import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from app.adapters.storage import PartLimits, Storage, open_storage
from app.config import ConfigError, Settings
from app.config.values import CopyStore

_MALFORMED = "is not a valid Redis URL (percent-encode / ? # @ : % in the user name or password)"
# redis-py's TLS options that name a file (or, for ssl_ca_path, a folder) every process must read.
_SSL_PATHS = {"ssl_ca_certs": os.path.isfile, "ssl_certfile": os.path.isfile, "ssl_keyfile": os.path.isfile,
              "ssl_ca_path": os.path.isdir}  # fmt: skip


def redis_for(settings: Settings) -> Redis:
    """The one Redis client of a process: web (pages, limits, listing cache, metrics), worker and scheduler.

    `REDIS_URL` carries everything: the password (`redis://:PASSWORD@…` or an ACL user
    `redis://USER:PASSWORD@…`) and, for `rediss://`, redis-py's TLS options as query parameters
    (`ssl_ca_certs=/path/ca.pem`, `ssl_certfile`, `ssl_keyfile`; the server certificate and its name
    are checked unless the URL says otherwise). A mistake is a ConfigError at start that never
    repeats the URL, since the URL holds the password.
    """
    url = settings.redis_url
    parts = urlsplit(url)
    if _cut_short(url):  # redis-py would connect elsewhere, and its errors would quote a piece of the password
        raise ConfigError("REDIS_URL", _MALFORMED)
    for name, value in parse_qsl(parts.query):
        if name.startswith("ssl_") and parts.scheme != "rediss":
            raise ConfigError("REDIS_URL", f"{name} is a TLS option: it needs rediss://")
        if name in _SSL_PATHS and not (_SSL_PATHS[name](value) and os.access(value, os.R_OK)):
            raise ConfigError("REDIS_URL", f"{name}: nothing readable at {value}")
    try:
        return Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
    except ValueError:
        # Its message can quote a piece of the password (an unencoded "/" ends the host part early).
        raise ConfigError("REDIS_URL", _MALFORMED) from None


def redacted_url(url: str) -> str:
    """Where `url` points, fit for a log line or a message: scheme, user, host, port and database only.

    The password goes, and so does the query (redis-py would take `?password=…` there too).
    """
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = None
    if port is None or _cut_short(url):  # what follows the host could be a piece of the password
        return f"{parts.scheme}://(a malformed address)"
    user = f"{parts.username}:***@" if parts.username else ("***@" if parts.password else "")
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


def _cut_short(url: str) -> bool:
    """Whether an unencoded / ? or # in the password ended the URL's user part early (an "@" follows it)."""
    parts = urlsplit(url)
    return "@" in parts.path + parts.query + parts.fragment


def redis_problem(settings: Settings, redis: Redis) -> str | None:
    """None when Redis answers; otherwise one line naming where (never the password) and why."""
    try:
        redis.ping()
    except AuthenticationError as exc:  # the server's words, e.g. "invalid username-password pair"
        why = f"refused the user name or password in REDIS_URL ({exc})"
    except ResponseError as exc:  # e.g. NOPERM: an ACL user without PING
        why = f"refused the connection: {exc}"
    except RedisError as exc:
        why = f"does not answer: {type(exc).__name__}: {exc}"
    else:
        return None
    password = urlsplit(settings.redis_url).password
    if password:  # redis-py's messages never quote it; this line must not start to if they ever do
        why = why.replace(password, "***").replace(unquote(password), "***")
    return f"Redis at {redacted_url(settings.redis_url)} {why}"


def storage_for(settings: Settings) -> Storage:
    return open_storage(
        settings.storage_url,
        region=settings.aws_region,
        endpoint_url=settings.s3_endpoint_url,
        addressing_style=settings.s3_addressing_style,
        access_key=settings.aws_access_key_id,
        secret_key=settings.aws_secret_access_key,
        part_limits=PartLimits(settings.s3_max_parts, settings.s3_max_part_size),
    )


def copy_storage_for(settings: Settings, store: CopyStore) -> Storage:
    """A store backups are copied to: its own S3 settings where its table gives them, else the console's."""
    own_keys = store.access_key is not None or store.secret_key is not None
    return open_storage(
        store.storage_url,
        region=store.region or settings.aws_region,
        endpoint_url=store.endpoint_url or settings.s3_endpoint_url,
        addressing_style=store.addressing_style or settings.s3_addressing_style,
        access_key=store.access_key if own_keys else settings.aws_access_key_id,
        secret_key=store.secret_key if own_keys else settings.aws_secret_access_key,
        part_limits=PartLimits(settings.s3_max_parts, settings.s3_max_part_size),
    )
