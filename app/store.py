"""The console store's schema: which revision it is at, and refusing to run on one that is behind.

The schema changes only through the Alembic migrations in `app/migrations` (Flask-Migrate),
run by `flask --app wsgi db upgrade`; no other process creates or alters tables. A web
server, worker or CLI command that finds the store behind stops with one line saying what to
run, instead of failing later on a missing column.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask.cli import AppGroup, ScriptInfo
from flask_migrate import upgrade

from app.extensions import db

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


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
