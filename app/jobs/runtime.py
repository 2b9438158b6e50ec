"""The app a worker process runs its jobs in, set once by the `worker` and `scheduler` commands.

Jobs write the audit log through the console store, which needs an app context. Each job
function enters one explicitly (`console_job`) instead of inheriting whatever context the
process that started the worker happened to have.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Flask, current_app, has_app_context

from app.domain.console import ConsoleBackups

F = TypeVar("F", bound=Callable)

_app: Flask | None = None


def configure(app: Flask | None) -> None:
    """The app whose settings and clients jobs use; None forgets it (tests)."""
    global _app
    _app = app


def app() -> Flask:
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def console_job(function: F) -> F:
    """Run the job function inside the configured app's context (its own, unless one is already there)."""

    @wraps(function)
    def wrapped(*args, **kwargs):
        if has_app_context() and (_app is None or current_app._get_current_object() is _app):
            return function(*args, **kwargs)
        with app().app_context():
            return function(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def console() -> ConsoleBackups:
    """This console's backups, from the configured app's settings and store (no app context needed)."""
    current = app()
    return ConsoleBackups.from_settings(current.config["SETTINGS"], current.extensions["pgconsole.storage"])
