"""The app's long-lived clients (Redis, each target's backup storage), built once per app from its settings,
and which target the current request or job acts on.

A request for `/targets/<name>/…` (see app/web) and a job for a target (see jobs/runtime) set the
target with `acting_on`; `settings()` and `storage()` are then that target's, so every rule written
for "this console's database" applies to the target in hand. Without one, they are the default
target's, which is the only one when there is no TARGETS_FILE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import Flask, current_app
from redis import Redis

from app.adapters.storage import Storage
from app.config import Settings
from app.domain.console import ConsoleBackups, ListingCache
from app.domain.naming import Owner
from app.domain.retention import RetentionPolicy
from app.services.clients import copy_storage_for, redis_for, storage_for
from app.store import console_settings as stored_settings

_acting_on: ContextVar[str | None] = ContextVar("pgconsole_target", default=None)


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    app.extensions["pgconsole.redis"] = redis_for(settings)
    app.extensions["pgconsole.storage"] = storage_for(settings)
    # The other targets' stores, built once too (the default target's is the one above).
    app.extensions["pgconsole.storages"] = {
        t.name: storage_for(settings.for_target(t.name)) for t in settings.targets if t.name != settings.target_name
    }
    # The stores backups are copied to (TARGETS_FILE's [stores.NAME]), by name, built once too.
    app.extensions["pgconsole.copy_stores"] = {
        store.name: copy_storage_for(settings, store) for t in settings.targets for store in t.copies
    }


@contextmanager
def acting_on(target: str | None) -> Iterator[None]:
    """Within the block, settings() and storage() are `target`'s (None: the default target)."""
    token = _acting_on.set(target)
    try:
        yield
    finally:
        _acting_on.reset(token)


def set_target(target: str | None) -> None:
    """For a request: act on `target` until `set_target(None)` at its teardown (Flask has no `with` around a view)."""
    _acting_on.set(target)


def scoped_target() -> str | None:
    """The target a request or job was explicitly scoped to, or None (e.g. the users page)."""
    return _acting_on.get()


def console_settings() -> Settings:
    """The app's settings as the default target sees them (what is the same for every target lives here too),
    with what an admin stored on the settings page applied where the server does not set it (read from the
    console store at most every few seconds: app/store/console_settings.py)."""
    return stored_settings.effective(current_app.config["SETTINGS"])


def settings() -> Settings:
    """The settings of the target this request or job acts on."""
    return console_settings().for_target(_acting_on.get())


def redis() -> Redis:
    return current_app.extensions["pgconsole.redis"]


def storage(target: str | None = None) -> Storage:
    """The backup store of `target`, or of the target this request or job acts on."""
    return storage_of(current_app, target or _acting_on.get())


def storage_of(app: Flask, target: str | None) -> Storage:
    """`app`'s store for `target` (None: the default target); needs no app context."""
    settings: Settings = app.config["SETTINGS"]
    if target is None or target == settings.target_name:
        return app.extensions["pgconsole.storage"]
    return app.extensions["pgconsole.storages"][settings.find_target(target).name]


def copy_store_of(app: Flask, name: str) -> Storage:
    """`app`'s copy store of this name (a [stores.NAME] table); KeyError for a name no target copies to."""
    return app.extensions["pgconsole.copy_stores"][name]


def console_backups(settings: Settings, storage: Storage, cache: ListingCache | None = None) -> ConsoleBackups:
    """The backups of `settings`' target in `storage`; `cache` shares listings (None: every listing asks the store)."""
    return ConsoleBackups(settings.target, Owner(settings.app_name, settings.app_env), settings.zone, storage, cache,
                          settings.signing_key)  # fmt: skip


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The retention policy the settings give: MAX_BACKUP_FILES and the daily/weekly/monthly counts (or the
    settings page's, when `settings` come from `settings()`)."""
    return RetentionPolicy(settings.max_backup_files, settings.retention_daily, settings.retention_weekly,
                           settings.retention_monthly)  # fmt: skip


def target_name(settings: Settings) -> str:
    """The name of `settings`' target, as alerts and metrics label it (settings made by hand, without
    targets, are named after their environment, as the target made from today's variables is)."""
    return settings.target_name or settings.app_env
