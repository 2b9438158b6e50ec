"""The client tools' environment: libpq's TLS and locale settings pass through, no secret does."""

from __future__ import annotations


def test_a_client_tools_environment_keeps_libpq_tls_and_locale_but_no_secret(app_env, monkeypatch):
    from app.adapters.postgres import child_env
    from app.config import Settings

    target = Settings.from_env(
        {**app_env, "DATABASE_URL": "postgresql://dumper:pw-of-target@db.internal:6543/shop"}
    ).target
    kept = {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/etc/ca.pem", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    dropped = {"PGSERVICE": "elsewhere", "RESTORE_PASSKEY": "pk", "SECRET_KEY": "sk", "AWS_SECRET_ACCESS_KEY": "aws",
               "REDIS_URL": "redis://x", "PGPASSWORD": "the-worker's-own"}  # fmt: skip
    for name, value in {**kept, **dropped}.items():
        monkeypatch.setenv(name, value)
    env = child_env(target, application_name="pgconsole-backup")
    assert {k: env[k] for k in kept} == kept
    assert (set(dropped) - {"PGPASSWORD"}).isdisjoint(env)
    assert env["PGPASSWORD"] == "pw-of-target"  # the target's password, in the environment (never argv)
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == ("db.internal", "6543", "dumper", "shop")
    assert env["PGAPPNAME"] == "pgconsole-backup" and env["PGCONNECT_TIMEOUT"] == "10"
