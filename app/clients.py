"""Clients built from settings, shared by the web app and the worker (no Flask, no RQ here)."""

from __future__ import annotations

from redis import Redis

from app.domain.storage import Storage, open_storage
from app.settings import Settings


def redis_for(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=30)


def storage_for(settings: Settings) -> Storage:
    return open_storage(
        settings.storage_url,
        region=settings.aws_region,
        endpoint_url=settings.s3_endpoint_url,
        addressing_style=settings.s3_addressing_style,
        access_key=settings.aws_access_key_id,
        secret_key=settings.aws_secret_access_key,
    )
