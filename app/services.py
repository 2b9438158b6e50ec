"""The app's long-lived clients (Redis, backup storage), built once per app from its settings."""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis

from app.clients import redis_for, storage_for
from app.domain.storage import Storage
from app.settings import Settings


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    app.extensions["pgconsole.redis"] = redis_for(settings)
    app.extensions["pgconsole.storage"] = storage_for(settings)


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def redis() -> Redis:
    return current_app.extensions["pgconsole.redis"]


def storage() -> Storage:
    return current_app.extensions["pgconsole.storage"]
