"""The console store's schema: which revision it is at, and refusing to run on one that is behind.

The schema changes only through the Alembic migrations in `app/store/migrations` (Flask-Migrate),
run by `flask --app wsgi db upgrade`; no other process creates or alters tables. A web
server, worker or CLI command that finds the store behind stops with one line saying what to
run, instead of failing later on a missing column.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask.cli import AppGroup, ScriptInfo
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

from app.extensions import db

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


def private_sqlite_file(url: str) -> None:
    """Create a SQLite store's file 0600 (its folder 0700 when made here) before SQLite would, 0644 under umask 022.

    It holds password hashes, token hashes and the audit log. SQLite gives its -wal and -shm
    files the database file's mode, so they follow. A file that exists keeps its mode.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database.startswith((":", "file:")):
        return
    path = Path(parsed.database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))  # SQLite's "empty database"


class StoreBehind(Exception):
    """str() is the one line shown to the operator."""


def current_revision() -> str | None:
    """The revision the store is at (None for a new store); needs an app context."""
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@functools.cache
def required_revision() -> str:
    """The newest migration this release ships."""
    return str(ScriptDirectory(MIGRATIONS).get_current_head())


def require_current_store() -> None:
    """Raise StoreBehind unless the store is at this release's revision; needs an app context."""
    have, need = current_revision(), required_revision()
    if have != need:
        raise StoreBehind(
            f"the console store is at revision {have or 'none (empty)'}, this release needs {need}: "
            "run flask --app wsgi db upgrade"
        )


def upgrade_store() -> None:
    """Create or upgrade the store to this release's revision; needs an app context."""
    upgrade(directory=MIGRATIONS)


class _ChecksStore:
    """A CLI command (or group) that first checks the store, so it exits with one line when behind."""

    def invoke(self, ctx: click.Context):
        app: Flask = ctx.ensure_object(ScriptInfo).load_app()
        with app.app_context():
            try:
                require_current_store()
            except StoreBehind as exc:
                raise click.ClickException(str(exc)) from None
        return super().invoke(ctx)  # type: ignore[misc]


class StoreCheckedGroup(_ChecksStore, AppGroup):
    pass


class StoreCheckedCommand(_ChecksStore, click.Command):
    pass
