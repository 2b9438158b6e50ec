"""`bin/console`: the console on this machine's PostgreSQL and Redis, with a demo database.

Defaults (each overridable by the environment): target database `pgconsole_demo` (or
DEMO_DATABASE) on 127.0.0.1:5432 (created with sample rows if missing), Redis on 127.0.0.1:6379,
backups in `instance/backups`, and a secret key and restore passkey generated once into
`instance/quickstart.env` (mode 0600). Two-factor codes are not required (REQUIRE_2FA=none), so
the demo admin signs in straight away; a deployment keeps the default (admins enrol first). The
console store is created or upgraded first (`flask --app wsgi db upgrade`). When it has no users
yet, an admin is created and its password printed once. A port already in use (PORT, default
5000) stops it before anything starts. The web server, one worker and the scheduler start
together and stop together on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]  # the checkout: wsgi.py, instance/
DEMO_DATABASE = "pgconsole_demo"  # DEMO_DATABASE changes it: two checkouts on one server, two demos


def load_or_create_secrets(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                values[key.strip()] = value.strip()
    made = [key for key in ("SECRET_KEY", "RESTORE_PASSKEY") if key not in values]
    for key in made:
        values[key] = secrets.token_urlsafe(24 if key == "RESTORE_PASSKEY" else 32)
    if made:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600, never written 0644 first and tightened after (the secret key would be readable meanwhile).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # a file an earlier release wrote 0644
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{k}={v}\n" for k, v in values.items()))
    if "RESTORE_PASSKEY" in made and "RESTORE_PASSKEY" not in os.environ:
        # Like the admin's password: shown once, for people who cannot open the file.
        print("\n  First run: the restore passkey (asked for on every restore, separate from passwords) is\n")
        print(f"      {values['RESTORE_PASSKEY']}\n")
        print(f"  It is shown only this once (it stays in {path}, mode 0600).\n")
    return values


def ensure_demo_database(url: str) -> None:
    from app.config import Settings

    target = Settings.from_env({"DATABASE_URL": url}, instance_path=str(ROOT / "instance")).target
    with psycopg.connect(**target.conninfo("postgres"), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)).fetchone():
            return
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.dbname)))
    with psycopg.connect(**target.conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), stock int)"
        )
        conn.execute(
            "INSERT INTO products (name, price, stock) "
            "SELECT 'Product ' || g, round((random() * 500)::numeric, 2), (random() * 100)::int "
            "FROM generate_series(1, 5000) g"
        )
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, product_id int REFERENCES products(id), "
            "quantity int, ordered_at timestamptz DEFAULT now() - random() * interval '90 days')"
        )
        conn.execute(
            "INSERT INTO orders (product_id, quantity) "
            "SELECT 1 + (random() * 4999)::int, 1 + (random() * 9)::int FROM generate_series(1, 20000)"
        )
    print(f"Created the demo database {target.dbname} with sample products and orders.")


def upgrade_store() -> None:
    """`flask --app wsgi db upgrade`, as every deployment runs it before starting anything."""
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT)
    if done.returncode != 0:
        sys.exit("pgconsole: could not create or upgrade the console store (see above)")


def ensure_admin() -> None:
    from app import create_app
    from app.accounts.people import create_user
    from app.extensions import db
    from app.store.models import User

    app = create_app()
    with app.app_context():
        if db.session.execute(db.select(User).limit(1)).first() is not None:
            return
        password = secrets.token_urlsafe(12)
        create_user("admin", "admin", password, created_by="quickstart")
    print("\n  First run: created the user 'admin' with the password\n")
    print(f"      {password}\n")
    print("  It is shown only this once. Sign in and keep it safe.\n")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something already listens on `host`:`port` (another console, another app)."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def chosen_port() -> int:
    """PORT (default 5000), checked before anything starts: one line and exit 1, never gunicorn's traceback."""
    raw = os.environ.get("PORT", "5000").strip()
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        sys.exit(f"pgconsole: PORT must be a port number from 1 to 65535 (got {raw!r})")
    if port_in_use(int(raw)):
        sys.exit(f"pgconsole: port {raw} is already in use; start on another with e.g. PORT=5001 bin/console")
    return int(raw)


def demo_defaults(instance: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """What the quick start sets unless the environment says otherwise."""
    demo_database = environ.get("DEMO_DATABASE", "").strip() or DEMO_DATABASE
    return {
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{demo_database}",
        "APP_ENV": "development",
        "REQUIRE_2FA": "none",  # a demo on this machine; the default (admins enrol first) is for deployments
    }


def main() -> int:
    port = chosen_port()
    instance = Path(os.environ.get("INSTANCE_PATH", ROOT / "instance"))
    generated = load_or_create_secrets(instance / "quickstart.env")
    for key, value in {**demo_defaults(instance, os.environ), **generated}.items():
        os.environ.setdefault(key, value)
    from app.config import ConfigError

    try:
        ensure_demo_database(os.environ["DATABASE_URL"]) if "DB_DATABASE" not in os.environ else None
        upgrade_store()
        ensure_admin()
    except ConfigError as exc:
        sys.exit(f"pgconsole: configuration error: {exc}")
    except psycopg.OperationalError as exc:
        sys.exit(f"pgconsole: cannot reach PostgreSQL ({str(exc).strip().splitlines()[0]}); is it running?")

    python = sys.executable
    procs = [
        subprocess.Popen(
            [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "wsgi:app"], cwd=ROOT
        ),
        subprocess.Popen([python, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT),
        subprocess.Popen([python, "-m", "flask", "--app", "wsgi", "scheduler"], cwd=ROOT),
    ]
    print(f"pgconsole is starting on http://127.0.0.1:{port}/  (restore passkey: in {instance / 'quickstart.env'})")
    if os.environ["REQUIRE_2FA"] == "none":
        print("Two-factor codes are not required in this demo (REQUIRE_2FA=none); a deployment asks admins for them.")
    print("Press Ctrl-C to stop the web server, the worker and the scheduler.")

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.3)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
