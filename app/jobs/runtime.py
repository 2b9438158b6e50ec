"""The settings and clients a worker process uses, set up once by the `worker` command."""

from __future__ import annotations

from functools import lru_cache

from redis import Redis

from app.clients import redis_for, storage_for
from app.domain.storage import Storage
from app.settings import Settings

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    global _settings
    _settings = settings
    storage.cache_clear()


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


@lru_cache(maxsize=1)
def storage() -> Storage:
    return storage_for(settings())


def redis() -> Redis:
    return redis_for(settings())
