"""Settings, sign-in, roles, CSRF, redirects, rate limits and health: the ground every page stands on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.config import ConfigError, Settings
from app.store.models import AuditEvent
from tests.helpers import PASSWORD
from tests.support import ROOT
from tests.support.processes import child_env

BASE_ENV = {"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}


@pytest.mark.parametrize(
    ("env", "variable", "words"),
    [
        ({}, "DATABASE_URL", "is not set"),
        ({"DATABASE_URL": "mysql://h/db"}, "DATABASE_URL", "postgresql://"),
        ({"DATABASE_URL": "postgresql://h:port/db"}, "DATABASE_URL", "port"),
        ({**BASE_ENV, "MAX_BACKUP_FILES": "many"}, "MAX_BACKUP_FILES", "whole number"),
        ({**BASE_ENV, "MAX_BACKUP_FILES": "0"}, "MAX_BACKUP_FILES", "at least 1"),
        ({**BASE_ENV, "JOB_TIMEOUT_SECONDS": "-3"}, "JOB_TIMEOUT_SECONDS", "at least"),
        ({**BASE_ENV, "APP_ENV": "production"}, "SECRET_KEY", "required"),
        ({**BASE_ENV, "APP_ENV": "prod uction"}, "APP_ENV", "letters"),
        ({**BASE_ENV, "DISPLAY_TIMEZONE": "Mars/Olympus"}, "DISPLAY_TIMEZONE", "unknown time zone"),
        ({**BASE_ENV, "BACKUP_STORAGE_URL": "ftp://x"}, "BACKUP_STORAGE_URL", "s3://"),
        ({**BASE_ENV, "BACKUP_STORAGE_URL": "s3://"}, "BACKUP_STORAGE_URL", "bucket"),
        ({**BASE_ENV, "BACKUP_COMPRESSION": "rar"}, "BACKUP_COMPRESSION", "gzip"),
        ({**BASE_ENV, "RESTORE_PASSKEY_HASH": "abc"}, "RESTORE_PASSKEY_HASH", "64 hex"),
        ({**BASE_ENV, "SESSION_COOKIE_SECURE": "maybe"}, "SESSION_COOKIE_SECURE", "true or false"),
        ({"DB_DATABASE": "x", "DB_PORT": "99999"}, "DB_PORT", "between"),
        ({**BASE_ENV, "S3_ADDRESSING_STYLE": "dns"}, "S3_ADDRESSING_STYLE", "auto, path, virtual"),
    ],
)
def test_a_bad_setting_names_the_variable_and_the_problem(env, variable, words, tmp_path):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env, instance_path=str(tmp_path))
    assert caught.value.variable == variable
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_seed_variable_names_are_accepted(tmp_path):
    settings = Settings.from_env(
        {
            "DB_HOST": "db.internal",
            "DB_PORT": "6543",
            "DB_USERNAME": "app",
            "DB_PASSWORD": "pw",
            "DB_DATABASE": "pharmatracker",
            "AWS_ACCESS_KEY": "AKIA1",
            "AWS_SECRET_KEY": "s3cr3t",
        },
        instance_path=str(tmp_path),
    )
    assert (settings.target.host, settings.target.port, settings.target.user) == ("db.internal", 6543, "app")
    assert settings.app_name == "pharmatracker"  # defaults to the database's name
    assert settings.aws_access_key_id == "AKIA1" and settings.aws_secret_access_key == "s3cr3t"
    assert (settings.max_backup_files, settings.recent_check_minutes, settings.job_timeout_seconds) == (30, 5, 300)
    assert settings.display_timezone == "Asia/Kolkata" and settings.aws_region == "ap-south-1"
    assert "s3cr3t" not in repr(settings) and "pw" not in repr(settings.target)


@pytest.mark.parametrize(
    ("style", "url_starts"), [("path", "https://s3.example.net/acme-backups/db/"), ("virtual", "https://acme-backups.s3.example.net/db/")]
)
def test_s3_addressing_style_decides_where_a_download_link_points(style, url_starts, tmp_path):
    """Stores without per-bucket host names (MinIO, SeaweedFS, an IP address) need path style."""
    from app.services.clients import storage_for

    settings = Settings.from_env(
        {**BASE_ENV, "BACKUP_STORAGE_URL": "s3://acme-backups/db", "S3_ENDPOINT_URL": "https://s3.example.net",
         "AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "S3_ADDRESSING_STYLE": style.upper()},
        instance_path=str(tmp_path),
    )  # fmt: skip
    link = storage_for(settings).download_url("x.dump")
    assert link.startswith(url_starts + "x.dump?")


def test_cli_start_with_a_bad_setting_prints_one_line_and_no_traceback(tmp_path):
    env = child_env(
        {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1/x",
            "MAX_BACKUP_FILES": "lots",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", "x", "--role", "admin"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "MAX_BACKUP_FILES" in done.stderr and "whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_sign_in_and_out(client, auth, make_user):
    make_user("admin", "admin")
    assert client.get("/").status_code == 302  # signed out: sent to /login
    page = client.get("/login").get_data(as_text=True)
    assert ">Username<" in page and ">Password<" in page and 'value="Sign in"' in page
    response = auth.login()
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "admin (admin)" in client.get("/").get_data(as_text=True)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    auth.logout()
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_and_audited(app, client, auth, make_user):
    make_user("admin", "admin")
    response = auth.login(password="not the password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    with app.app_context():
        events = AuditEvent.query.filter_by(action="login").all()
        assert [(e.username, e.outcome) for e in events] == [("admin", "failed")]
        assert all("not the password" not in (e.detail or "") for e in events)


def test_a_disabled_user_cannot_sign_in(app, auth, make_user):
    from app.extensions import db
    from app.store.models import User

    user_id = make_user("gone", "admin")
    with app.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert auth.login("gone").status_code == 401


def test_failed_sign_ins_never_lock_the_username(client, auth, make_user):
    make_user("admin", "admin")
    for _ in range(5):
        assert auth.login(password="nope").status_code == 401
    assert auth.login().status_code == 302  # limits are per address (tests/accounts/test_sign_in_limits.py)


def test_login_form_without_csrf_token_is_rejected(client, make_user):
    make_user("admin", "admin")
    response = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_logout_needs_csrf(client, auth, make_user):
    make_user("admin", "admin")
    auth.login()
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "http:/evil", "\t//evil"],
)
def test_next_never_leaves_the_site(auth, make_user, target):
    make_user("admin", "admin")
    response = auth.login(next=target)
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_next_keeps_a_local_path(auth, make_user):
    make_user("admin", "admin")
    assert auth.login(next="/jobs/abc").headers["Location"] == "/jobs/abc"


def test_roles_on_pages(client, auth, make_user):
    make_user("viewer", "viewer")
    auth.login("viewer")
    page = client.get("/").get_data(as_text=True)
    assert "Create backup" not in page
    token = auth.csrf_token("/")
    assert client.post("/backups", data={"csrf_token": token}).status_code == 403


def test_roles_on_the_api(client, make_user, token_for):
    make_user("viewer", "viewer")
    headers = token_for("viewer")
    assert client.get("/api/setting/backups").status_code == 401
    assert client.get("/api/setting/backups", headers={"Authorization": "Bearer pgc_wrong"}).status_code == 401
    assert client.get("/api/setting/backups", headers=headers).status_code == 200
    refused = client.post("/api/setting/backup", headers=headers)
    assert refused.status_code == 403 and "operator" in refused.get_json()["error"]


def test_api_with_a_session_cookie_needs_csrf(client, auth, make_user):
    make_user("operator", "operator")
    auth.login("operator")
    assert client.post("/api/setting/backup").status_code == 400


def test_security_headers(client):
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_environment_badge_is_on_every_page(make_app):
    app = make_app(APP_ENV="production")
    page = app.test_client().get("/login").get_data(as_text=True)
    assert 'class="env env-red"' in page and ">production<" in page  # ENVIRONMENT_COLORS' default


def test_healthz_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"redis": "ok", "storage": "ok", "database": "ok", "console_store": "ok"}


def test_healthz_names_what_is_down(make_app, free_redis_port):
    app = make_app(
        REDIS_URL=f"redis://127.0.0.1:{free_redis_port}/0",
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/pgct_absent_db",
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert set(body["down"]) == {"redis", "database"}
    assert body["checks"]["storage"] == "ok"
    assert "postgresql://" not in response.get_data(as_text=True)


@pytest.fixture
def free_redis_port():
    from tests.support.processes import free_port

    return free_port()


def test_cli_users_and_tokens(app, runner):
    result = runner.invoke(
        args=["users", "create", "ops", "--role", "operator", "--password-stdin"], input="a long enough password\n"
    )
    assert result.exit_code == 0, result.output
    duplicate = runner.invoke(args=["users", "create", "ops", "--role", "operator", "--password-stdin"], input="x" * 12)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    short = runner.invoke(args=["users", "create", "new", "--role", "admin", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 10" in short.output
    bad_role = runner.invoke(args=["users", "create", "new", "--role", "root", "--password-stdin"], input="x" * 12)
    assert bad_role.exit_code != 0 and "root" in bad_role.output
    token = runner.invoke(args=["tokens", "create", "ops"])
    assert token.exit_code == 0 and token.output.startswith("pgc_")
    missing = runner.invoke(args=["tokens", "create", "nobody"])
    assert missing.exit_code != 0 and "no user named" in missing.output

    client = app.test_client()
    plain = token.output.strip()
    assert client.get("/api/setting/backups", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    with app.app_context():
        from app.store.models import ApiToken, User

        assert ApiToken.query.one().token_hash != plain
        assert User.query.filter_by(username="ops").one().password_hash != "a long enough password"


def test_anonymous_healthz_lists_nothing_and_answers_from_a_short_cache(make_app, make_user, token_for, target_db,
                                                                         pg_admin, monkeypatch):  # fmt: skip
    """Anyone can reach /healthz: it must not cost a bucket listing or name a backup file."""
    from app.web.health import views as health
    from tests.helpers import backup_run_in_process
    from tests.support.databases import drop_database

    app = make_app()
    filename = backup_run_in_process(app)["result"]["filename"]
    make_user("vic", "viewer")
    headers = token_for("vic")
    anonymous = app.test_client()

    first = anonymous.get("/healthz")
    assert first.status_code == 200 and "newest_backup" not in first.get_json()
    assert filename not in first.get_data(as_text=True) and app.config["SETTINGS"].app_name not in first.get_data(
        as_text=True
    )
    detailed = anonymous.get("/healthz", headers=headers).get_json()
    assert detailed["newest_backup"]["filename"] == filename

    drop_database(pg_admin, target_db)  # the target goes away: a fresh check sees it at once
    assert anonymous.get("/healthz", headers=headers).get_json()["down"] == ["database"]
    assert anonymous.get("/healthz").status_code == 200  # the anonymous answer is the cached one…
    monkeypatch.setattr(health, "CACHE_SECONDS", 0.0)
    stale = anonymous.get("/healthz")  # …until it is older than CACHE_SECONDS
    assert stale.status_code == 503 and stale.get_json()["down"] == ["database"]
