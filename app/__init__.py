"""pgconsole: back up one PostgreSQL database to S3 and restore it safely, from a browser."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from app.extensions import csrf, db, login_manager
from app.settings import Settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app. `config` overrides environment variables (tests use it)."""
    config = dict(config or {})
    settings = Settings.from_env({**os.environ, **{k: str(v) for k, v in config.items()}})
    # Templates and static files live inside the package (app/templates, app/static), so an
    # installed wheel has its pages; the top-level templates/ and static/ are links to them.
    app = Flask(__name__, instance_path=settings.instance_path)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.console_database_url,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.session_cookie_secure,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=64 * 1024,
        SETTINGS=settings,
    )
    app.config.update({k: v for k, v in config.items() if k in ("TESTING", "WTF_CSRF_ENABLED")})
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Behind N reverse proxies the client's address is the Nth from the right in X-Forwarded-For;
        # without this every user shares the proxy's address (rate limits, audit). Never trust more hops.
        # Not X-Forwarded-Host: a proxy that passes the client's through would let it choose the
        # host of the reset links the console builds; proxies forward Host itself.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]

    db.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)

    from app import services

    services.init_app(app)

    from app.web import register_blueprints

    register_blueprints(app)

    from app.cli import register_commands

    register_commands(app)

    with app.app_context():
        use_wal_for_sqlite()
        create_tables()
    return app


def use_wal_for_sqlite() -> None:
    """SQLite in WAL mode: page reads never wait on the worker's audit writes, and vice versa."""
    from sqlalchemy import event

    if db.engine.url.get_backend_name() != "sqlite":
        return

    @event.listens_for(db.engine, "connect")
    def _wal(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        # Switching a new store to WAL needs it to itself: SQLite answers "locked" at once, without
        # waiting, while another process (a worker starting beside the CLI) holds a lock.
        retry_while_raced(lambda: cursor.execute("PRAGMA journal_mode=WAL"), sqlite3.OperationalError, ("locked",))
        cursor.close()


def create_tables() -> None:
    """Create the console store's tables; tolerate other processes doing it at the same moment.

    Two processes starting on a new store race: the loser sees "already exists", or, on SQLite,
    "locked" at once when its read snapshot went stale under the winner's CREATE. Both mean
    "look again".
    """
    from sqlalchemy.exc import OperationalError, ProgrammingError

    def create_all() -> None:
        try:
            db.create_all()
        except (OperationalError, ProgrammingError):
            db.session.rollback()
            raise

    retry_while_raced(create_all, (OperationalError, ProgrammingError), ("already exists", "locked"))


def retry_while_raced(
    action: Callable[[], object],
    errors: type[Exception] | tuple[type[Exception], ...],
    signs: tuple[str, ...],
    within: float = 10.0,
) -> None:
    """Run `action`; while it fails with one of `errors` whose message has one of `signs`, try again."""
    deadline = time.monotonic() + within
    while True:
        try:
            action()
            return
        except errors as exc:
            if not any(sign in str(exc) for sign in signs) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
