"""Alembic's entry point for `flask --app wsgi db …` (Flask-Migrate): the console store's schema.

Several containers may run `db upgrade` at boot against one store, so the upgrade holds a
lock for its whole run: an advisory lock on PostgreSQL, a file lock beside a SQLite file.
The second process then finds the store current and does nothing.
"""

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from flask import current_app
from sqlalchemy.engine import Connection

config = context.config
fileConfig(config.config_file_name)
logger = logging.getLogger("alembic.env")
target_db = current_app.extensions["migrate"].db
MIGRATION_LOCK = 7_316_245_101  # any fixed number; names this lock among PostgreSQL's advisory locks


@contextlib.contextmanager
def upgrade_lock(connection: Connection) -> Iterator[None]:
    url = connection.engine.url
    if url.get_backend_name() == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        yield
    elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # 0600 beside the 0600 store; never through a link, and never truncating what is there.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(Path(url.database).with_suffix(".migrate-lock"), flags, 0o600), "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield


def skip_empty_autogenerate(context, revision, directives) -> None:
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_online() -> None:
    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", skip_empty_autogenerate)
    with target_db.engine.connect() as connection:
        if connection.engine.url.get_backend_name() == "sqlite":
            # WAL lets page reads go on while a worker writes the audit log; it is a property of
            # the file, so it is set once here, before any other process opens the store.
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            connection.commit()  # or Alembic would take the open transaction as the caller's and never commit
        context.configure(connection=connection, target_metadata=target_db.metadata, **conf_args)
        with context.begin_transaction(), upgrade_lock(connection):
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("pgconsole's migrations run online only: flask --app wsgi db upgrade")
run_migrations_online()
