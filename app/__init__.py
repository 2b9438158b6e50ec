"""pgconsole: back up one PostgreSQL database to S3 and restore it safely, from a browser."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from app.config import Settings
from app.extensions import csrf, db, login_manager, migrate
from app.store.schema import MIGRATIONS, private_sqlite_file, require_current_store


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app. `config` overrides environment variables (tests use it)."""
    config = dict(config or {})
    settings = Settings.from_env({**os.environ, **{k: str(v) for k, v in config.items()}})
    # Templates and static files live inside the package (app/templates, app/static), so an
    # installed wheel has its pages; the top-level templates/ and static/ are links to them.
    app = Flask(__name__, instance_path=settings.instance_path)
    Path(app.instance_path).mkdir(mode=0o700, parents=True, exist_ok=True)  # the store, secrets and backups
    private_sqlite_file(settings.console_database_url)
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
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)

    from app import services

    services.init_app(app)

    from app.web import register_blueprints

    register_blueprints(app)

    from app.cli import register_commands

    register_commands(app)

    with app.app_context():
        wait_for_sqlite_locks()
        if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
            # A web server (or a test's app): refuse a store that is behind. CLI commands check
            # for themselves (app/store/schema.py), so that `db upgrade` can run on such a store.
            require_current_store()
    return app


def wait_for_sqlite_locks() -> None:
    """A SQLite store waits up to 10 s for another process's write instead of failing at once."""
    from sqlalchemy import event

    if db.engine.url.get_backend_name() != "sqlite":
        return

    @event.listens_for(db.engine, "connect")
    def _busy_timeout(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=10000")
