"""The settings an admin changes on the settings page, stored in the console store.

What the server sets (the environment, TARGETS_FILE) is the default and a lock: a value it sets
explicitly (`Settings.server_set`) cannot be changed on the page, and a value stored for it is
ignored. Everything else reads the effective settings (`effective`, which `services.settings()`
returns): the worker's retention and notifications, the scheduler's schedules and the pages.

One row per setting, and per target for a target's own settings: the default target keeps the
bare name (as the backup schedule had before targets). Notification URLs carry tokens and
passwords: they are stored encrypted with a key derived from SECRET_KEY, and shown only by
scheme and host.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from flask import current_app
from sqlalchemy import select

from app.adapters.apprise import where
from app.config import NOTIFY_EVENTS, Settings
from app.config.values import EDITABLE_PER_TARGET, EDITABLE_VARIABLES
from app.domain.cron import cron_problem
from app.extensions import db
from app.store.models import ConsoleSetting, utcnow

log = logging.getLogger(__name__)
CACHE_SECONDS = 5  # how long a process keeps the effective settings before reading the store again
_CACHE = "pgconsole.effective_settings"


class Refused(ValueError):
    """A value the page may not store: the server sets it, or it is out of range; str() says why, for the field."""


@dataclass(frozen=True)
class Editable:
    """One editable setting: its `Settings` field, how a stored text becomes its value and back, and its words."""

    name: str
    label: str
    parse: Callable[[str], object]
    store: Callable[[object], str]
    check: Callable[[object], str | None] = lambda value: None
    shown: Callable[[object], str] = str
    secret: bool = False

    @property
    def per_target(self) -> bool:
        return self.name in EDITABLE_PER_TARGET

    @property
    def variable(self) -> str:
        return EDITABLE_VARIABLES[self.name]


def _schedule_problem(value: object) -> str | None:
    return cron_problem(str(value)) if value else None


def _count_check(least: int, most: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if not isinstance(value, int) or not least <= value <= most:
            return f"Must be a whole number from {least:,} to {most:,} (got {value})"
        return None

    return check


def _events_check(value: object) -> str | None:
    unknown = [e for e in value if e not in NOTIFY_EVENTS]  # type: ignore[attr-defined]
    return f"Unknown event {unknown[0]!r}" if unknown else None


def _schedule(name: str, label: str) -> Editable:
    return Editable(name, label, parse=lambda text: text or None, store=lambda value: value or "",
                    check=_schedule_problem, shown=lambda value: value or "off")  # fmt: skip


def _count(name: str, label: str, least: int) -> Editable:
    return Editable(name, label, parse=int, store=str, check=_count_check(least, 100_000))


REGISTRY = {
    e.name: e
    for e in (
        _schedule("backup_schedule", "backup schedule"),
        _schedule("verify_schedule", "verify schedule"),
        _count("max_backup_files", "newest backups kept", 1),
        _count("retention_daily", "daily backups kept", 0),
        _count("retention_weekly", "weekly backups kept", 0),
        _count("retention_monthly", "monthly backups kept", 0),
        Editable("notify_urls", "notification channels", parse=lambda text: tuple(json.loads(text)),
                 store=lambda value: json.dumps(list(value)),  # type: ignore[call-overload]
                 shown=lambda value: ", ".join(where(u) for u in value) or "none", secret=True),  # type: ignore[attr-defined]
        Editable("notify_events", "events that notify", parse=lambda text: tuple(text.split()),
                 store=lambda value: " ".join(value), check=_events_check,  # type: ignore[call-overload]
                 shown=lambda value: ", ".join(value) or "none"),  # type: ignore[call-overload]
    )
}  # fmt: skip


def setting_key(name: str, settings: Settings) -> str:
    """The row of `name` for `settings`' target: the default target (and a setting for all) keeps the bare name."""
    if not REGISTRY[name].per_target or settings.target_name == settings.default_target:
        return name
    return f"{name}:{settings.target_name}"


def locked(name: str, settings: Settings) -> bool:
    """Whether the server sets `name` for `settings`' target, so the page may not change it."""
    return name in settings.server_set


def _fernet(settings: Settings):
    from cryptography.fernet import Fernet  # here: the worker imports this module but decrypts rarely

    return Fernet(base64.urlsafe_b64encode(settings.stored_secrets_key))


def _decode(editable: Editable, text: str, settings: Settings) -> object:
    """The stored value; a secret that no longer decrypts (SECRET_KEY changed) reads as the server's value,
    so the console keeps working and the page offers to add the channels again."""
    if editable.secret:
        from cryptography.fernet import InvalidToken

        try:
            text = _fernet(settings).decrypt(text.encode()).decode()
        except InvalidToken:
            log.warning("the stored %s cannot be decrypted (was SECRET_KEY changed?): ignored", editable.label)
            return getattr(settings, editable.name)
    return editable.parse(text)


def _encode(editable: Editable, value: object, settings: Settings) -> str:
    text = editable.store(value)
    return _fernet(settings).encrypt(text.encode()).decode() if editable.secret else text


def _stored_texts() -> dict[str, str]:
    # Columns, not objects: a long-lived session (the scheduler's) would hand back the rows it loaded before.
    return dict(db.session.execute(select(ConsoleSetting.key, ConsoleSetting.value)).all())


def with_stored(settings: Settings, texts: dict[str, str] | None = None) -> Settings:
    """`settings` with every stored value the server does not set applied, for every target."""
    texts = _stored_texts() if texts is None else texts

    def stored(name: str, scope: Settings) -> dict:
        key = setting_key(name, scope)
        if key not in texts or locked(name, scope):
            return {}
        return {name: _decode(REGISTRY[name], texts[key], scope)}

    def own(scope: Settings) -> dict:
        return {k: v for name in EDITABLE_PER_TARGET for k, v in stored(name, scope).items()}

    targets = tuple(replace(t, **own(settings.for_target(t.name))) for t in settings.targets)
    changes = {k: v for name in REGISTRY if not REGISTRY[name].per_target for k, v in stored(name, settings).items()}
    if not settings.targets:  # settings made by hand: their one target is themselves
        return replace(settings, **own(settings), **changes)
    acting = next(t for t in targets if t.name == settings.target_name)
    own_fields = {name: getattr(acting, name) for name in EDITABLE_PER_TARGET}
    return replace(settings, targets=targets, **changes, **own_fields)


def effective(settings: Settings) -> Settings:
    """`settings` with the stored values applied, read from the store at most every CACHE_SECONDS per process."""
    cached = current_app.extensions.get(_CACHE)
    if cached and cached[0] is settings and cached[1] > time.monotonic():
        return cached[2]
    result = with_stored(settings)
    current_app.extensions[_CACHE] = (settings, time.monotonic() + CACHE_SECONDS, result)
    return result


def forget_cached() -> None:
    """After a change: this process reads the store again at once (others within CACHE_SECONDS)."""
    current_app.extensions.pop(_CACHE, None)


def stored_row(name: str, settings: Settings) -> ConsoleSetting | None:
    return db.session.get(ConsoleSetting, setting_key(name, settings))


def current(name: str, settings: Settings) -> object:
    """The value of `name` for `settings`' target: the stored one unless the server sets it, else the server's."""
    row = None if locked(name, settings) else stored_row(name, settings)
    return _decode(REGISTRY[name], row.value, settings) if row else getattr(settings, name)


def save(name: str, value: object, settings: Settings, by: str) -> str | None:
    """Store `value` for `name` (for `settings`' target); what changed, before and after, in words for the
    audit log (a secret as scheme and host only), or None when nothing did.

    Refused when the server sets `name`, or the value is out of range (the message is for the field).
    """
    editable = REGISTRY[name]
    if locked(name, settings):
        raise Refused(f"Set by the server ({editable.variable}); change it there.")
    if problem := editable.check(value):
        raise Refused(problem)
    before = current(name, settings)
    if editable.store(before) == editable.store(value):
        return None
    row = stored_row(name, settings) or ConsoleSetting(key=setting_key(name, settings))
    row.value, row.updated_by, row.updated_at = _encode(editable, value, settings), by, utcnow()
    db.session.add(row)
    db.session.commit()
    forget_cached()
    return f"{editable.label}: {editable.shown(before)} → {editable.shown(value)}"
