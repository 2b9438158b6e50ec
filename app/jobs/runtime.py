"""The app a worker process runs its jobs in, set once by the `worker` and `scheduler` commands.

Jobs write the audit log through the console store, which needs an app context. Each job
function enters one explicitly (`console_job`) instead of inheriting whatever context the
process that started the worker happened to have. A job for a target gets the target's name
(`target=`, a plain string) and acts on it: settings and storage are resolved here, in the
worker, from the app's own settings, never sent through Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import Flask, current_app, has_app_context

from app import services
from app.domain.console import ConsoleBackups

F = TypeVar("F", bound=Callable)

_app: Flask | None = None


def configure(app: Flask | None) -> None:
    """The app whose settings and clients jobs use; None forgets it (tests)."""
    global _app
    _app = app


def app() -> Flask:
    """The app set by `configure`; the jobs layer never builds one, so a process that runs jobs sets it first."""
    if _app is None:
        raise RuntimeError(
            "jobs run in a worker started by `flask --app wsgi worker` (or `flask --app wsgi scheduler`), "
            "which sets the app they run in; elsewhere call app.jobs.runtime.configure(app) before running one"
        )
    return _app


def console_job(function: F) -> F:
    """Run the job function inside the configured app's context (its own, unless one is already there),
    acting on the target named by its `target` keyword (the default target without one)."""

    @wraps(function)
    def wrapped(*args, target: str | None = None, **kwargs):
        with services.acting_on(target):
            if has_app_context() and (_app is None or current_app._get_current_object() is _app):
                return function(*args, **kwargs)
            with app().app_context():
                return function(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def console(target: str | None = None) -> ConsoleBackups:
    """The backups of `target` (default: the one this job acts on), from the configured app's settings
    and stores (no app context needed)."""
    current = app()
    name = target or services.scoped_target()
    return services.console_backups(current.config["SETTINGS"].for_target(name), services.storage_of(current, name))
