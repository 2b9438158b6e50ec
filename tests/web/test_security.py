"""Web security: CSRF on every state-changing route, fresh sessions, and no secret anywhere."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pyotp
import pytest
import requests

from app.store.models import AuditEvent
from tests.helpers import PASSWORD, AuthActions, wait_for, wait_for_job
from tests.support import ROOT
from tests.support.notify import closed_port
from tests.support.processes import child_env


def test_every_state_changing_page_route_needs_a_csrf_token(app, client, auth, make_user):
    make_user("ada", "admin")
    auth.login("ada")
    checked = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith("/api/") or rule.endpoint == "auth.login":
            continue
        url = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: "1" if "id" in m.group(1) else "x.dump", rule.rule)
        response = client.post(url, data={"note": "n", "role": "viewer", "schedule": ""})
        assert response.status_code in (400, 404), f"{rule.rule} answered {response.status_code} without CSRF"
        checked.append(rule.rule)
    assert len(checked) >= 10  # users, roles, active, reset, account, tokens, pin, verify, restore, settings…
    assert client.get("/").status_code == 200  # still signed in: nothing above did anything


def test_signing_in_starts_a_fresh_session(app, make_user):
    make_user("ada", "admin")
    client = app.test_client()
    auth = AuthActions(client)
    client.get("/login")
    before = client.get_cookie("session")
    auth.login("ada")
    after = client.get_cookie("session")
    assert before is not None and after is not None and before.value != after.value
    # The pre-login cookie (e.g. planted by an attacker) does not carry the signed-in session.
    planted = app.test_client()
    planted.set_cookie("session", before.value)
    assert planted.get("/").status_code == 302


def test_session_cookie_is_secure_when_configured(make_app, make_user):
    app = make_app(SESSION_COOKIE_SECURE="true")
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["REMEMBER_COOKIE_SECURE"] is True


@pytest.fixture
def secrets_env(app_env, s3_server, oidc_provider, tmp_path):
    """A console whose every secret is distinctive, so a leak is easy to find. Its backups are
    encrypted with age, so the worker reads a private key (the identity file) to restore them."""
    from tests.adapters.test_encryption import age_key

    identity, recipient = age_key(tmp_path, "worker-key")
    return {
        **app_env,
        **s3_server,
        "AWS_ACCESS_KEY_ID": "AKIAPGCONSOLELEAKTEST",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-that-must-never-leak-9931",
        "RESTORE_PASSKEY": "passkey-that-must-never-leak-4417",
        "SECRET_KEY": "flask-secret-that-must-never-leak-2201",
        "BACKUP_ENCRYPTION_RECIPIENTS": recipient,
        "BACKUP_ENCRYPTION_IDENTITY_FILE": str(identity),
        "OIDC_ISSUER": oidc_provider.url,
        "OIDC_CLIENT_ID": "pgconsole",
        "OIDC_CLIENT_SECRET": "oidc-client-secret-that-must-never-leak-7761",
        "OIDC_ROLE_MAP": "dba=admin,developers=operator",
    }


def private_key_of(identity_file: str) -> str:
    """The AGE-SECRET-KEY-1… line of an identity file made by age-keygen."""
    with open(identity_file) as lines:
        return next(line.strip() for line in lines if line.startswith("AGE-SECRET-KEY-"))


def csrf_token(browser: requests.Session, url: str) -> str:
    page = browser.get(url, timeout=30).text
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


def sign_in_with_second_factor(base: str, username: str, password: str) -> tuple[str, list[str]]:
    """Over HTTP, as a browser: enrol in two-factor codes, then sign in with a recovery code and with a code.

    Returns the TOTP secret and the recovery codes the pages showed.
    """
    browser = requests.Session()

    def post(path: str, data: dict, token_from: str) -> requests.Response:
        return browser.post(base + path, data={**data, "csrf_token": csrf_token(browser, base + token_from)},
                            timeout=30)  # fmt: skip

    assert post("/login", {"username": username, "password": password}, "/login").url == base + "/"
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', browser.get(base + "/account/two-factor").text).group(1)
    shown = post("/account/two-factor", {"code": pyotp.TOTP(secret).now()}, "/account/two-factor")
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", shown.text)
    assert len(codes) == 10
    for code in (codes[0], pyotp.TOTP(secret).at(time.time() + 30)):
        post("/logout", {}, "/")
        assert post("/login", {"username": username, "password": password}, "/login").url == base + "/login/code"
        post("/login/code", {"code": "000000"}, "/login/code")  # a wrong one first
        assert post("/login/code", {"code": code}, "/login/code").url == base + "/"
    return secret, codes


def sign_in_with_sso(base: str, provider) -> None:
    browser = requests.Session()
    provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    start = browser.get(base + "/login/oidc", allow_redirects=False, timeout=30)
    back = provider.authorize(start.headers["Location"], "u-1")
    assert browser.get(back, timeout=30).url == base + "/"


# Secrets inside notification URLs: paths, tokens where a host would be, a mail password.
NOTIFY_SECRETS = ("notify-url-secret-5521", "dead-url-secret-8812", "T0SLACKSECRETA", "slack-token-secret-3391",
                  "old-webhook-secret-4410", "smtp-password-secret-6620")  # fmt: skip


def notify_env(receiver) -> dict[str, str]:
    """Every kind of channel, with distinctive secrets: one delivering, the others failing (and so logged)."""
    return {
        "NOTIFY_URLS": f"json://127.0.0.1:{receiver.port}/hook/notify-url-secret-5521, "
                       f"json://127.0.0.1:{closed_port()}/hook/dead-url-secret-8812 "
                       "slack://T0SLACKSECRETA/B0SLACKSECRETB/slack-token-secret-3391",
        "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/services/old-webhook-secret-4410",
        "ALERT_EMAIL_TO": "ops@example.com",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(closed_port()),
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": "smtp-password-secret-6620",
    }  # fmt: skip


def test_no_secret_reaches_logs_redis_job_data_or_the_audit_log(secrets_env, processes, redis_server, tmp_path,
                                                                 receiver, oidc_provider):  # fmt: skip
    from app.config import Settings
    from app.extensions import db
    from app.jobs.queue import notify_queue

    secrets_env = {**secrets_env, **notify_env(receiver)}

    app, token = _people_of(secrets_env)
    base = processes.web(secrets_env)
    processes.worker(secrets_env)

    def call(method, path, body=None):
        return _api(base, token, method, path, body)

    status, body = call("POST", "/api/setting/backup")
    settings = Settings.from_env(secrets_env)
    from app.services.clients import redis_for

    redis = redis_for(settings)
    filename = wait_for_job(redis, json.loads(body)["job_id"])["result"]["filename"]
    assert filename.endswith(".dump.age")  # so the restore below decrypts with the worker's private key
    for passkey in ("wrong-passkey-typed-by-someone", secrets_env["RESTORE_PASSKEY"]):
        call("POST", "/api/setting/restore", json.dumps({"filename": filename, "passkey": passkey}).encode())
    status, body = call("GET", "/api/setting/backups")
    assert status == 200
    restore_jobs = [e.job_id for e in _audit(app) if e.action == "restore" and e.outcome == "requested"]
    assert restore_jobs, "the restore with the right passkey was accepted"
    wait_for_job(redis, restore_jobs[0])
    # The restore's "restore-finished" alert reaches the two working URLs; the other three fail, and are logged.
    wait_for(lambda: len(receiver.requests) >= 2, timeout=30, message="the restore's alert")
    deliveries = notify_queue(settings, redis).finished_job_registry
    wait_for(lambda: deliveries.count >= 1, timeout=60, message="the whole delivery")
    cli = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "notify", "test"], cwd=ROOT,
                         env=child_env(secrets_env), capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 1 and f"json://127.0.0.1:{receiver.port}: ok" in cli.stdout
    pages = cli.stdout + cli.stderr + _settings_pages(app)
    sign_in_with_sso(base, oidc_provider)
    totp_secret, recovery_codes = sign_in_with_second_factor(base, "olga", "olga's secret password 77")

    secrets = _every_secret(secrets_env, token, totp_secret, recovery_codes)
    for secret in NOTIFY_SECRETS:
        assert secret not in pages, f"a notification secret is on a page or the CLI's output: {secret[:6]}…"
    logs = processes.log("web") + processes.log("worker")
    assert "alert to json://127.0.0.1:" in logs  # the failed deliveries were logged, by scheme and host
    namespace = settings.redis_namespace
    keys = [*redis_server.scan_iter(f"{namespace}*"), *redis_server.scan_iter("rq:*")]
    stored = b" ".join(redis_server.dump(key) or b"" for key in keys) + b" ".join(keys)  # values and names
    with app.app_context():
        audit_text = " ".join(f"{e.username} {e.action} {e.target} {e.outcome} {e.detail}" for e in _audit(app))
        db.engine.dispose()
    assert "restore" in audit_text and "backup" in audit_text
    assert "sso.login" in audit_text and "2fa.enrol" in audit_text and "2fa.recovery-code" in audit_text
    for secret in secrets:
        assert secret not in logs, f"a secret is in the logs: {secret[:6]}…"
        assert secret.encode() not in stored, f"a secret is in Redis: {secret[:6]}…"
        assert secret not in audit_text, f"a secret is in the audit log: {secret[:6]}…"


def _people_of(secrets_env: dict) -> tuple:
    """Ada, an admin made by the CLI with her API token, and Olga, an operator: the app and Ada's token."""
    from app import create_app
    from app.accounts.people import create_token, create_user, find_user

    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", "ada", "--role", "admin",
                    "--password-stdin"], cwd=ROOT, env=child_env(secrets_env), input=PASSWORD, text=True,
                   check=True, capture_output=True)  # fmt: skip
    app = create_app(secrets_env)
    with app.app_context():
        token = create_token(find_user("ada"), "ci", None, None, "test")
        create_user("olga", "operator", "olga's secret password 77", "test")
    return app, token


def _api(base: str, token: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One API call with the bearer token, as a script makes it: the status and the body, errors included."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _every_secret(secrets_env: dict, token: str, totp_secret: str, recovery_codes: list[str]) -> list[str]:
    """Every secret the run handled: settings, keys, passwords, the token, a wrong passkey, two-factor codes."""
    secrets = [secrets_env[k] for k in ("AWS_SECRET_ACCESS_KEY", "RESTORE_PASSKEY", "SECRET_KEY", "OIDC_CLIENT_SECRET")]
    secret_key = private_key_of(secrets_env["BACKUP_ENCRYPTION_IDENTITY_FILE"])
    secrets += [secret_key, secret_key.removeprefix("AGE-SECRET-KEY-1").lower()]  # as written, and bech32 data
    secrets += [PASSWORD, "olga's secret password 77", token, "wrong-passkey-typed-by-someone", *NOTIFY_SECRETS]
    return secrets + [totp_secret, *recovery_codes, *(c.replace("-", "") for c in recovery_codes)]


def _settings_pages(app) -> str:
    """/settings and the test notification's answer, as an admin sees them."""
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.login("ada", PASSWORD).status_code == 302
    page = client.get("/settings").get_data(as_text=True)
    assert "slack://…" in page
    answer = client.post("/settings/test-notification", data={"csrf_token": auth.csrf_token("/settings")})
    assert answer.status_code == 200
    return page + answer.get_data(as_text=True)


def _audit(app):

    with app.app_context():
        return AuditEvent.query.order_by(AuditEvent.id).all()


def dump_children(dbname: str) -> list[int]:
    """Pids of running pg_dump processes working on `dbname` (found through their environment)."""
    from pathlib import Path

    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"pg_dump" not in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                continue
            if f"PGDATABASE={dbname}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def test_a_pg_dump_child_inherits_no_secret_of_the_worker(secrets_env, processes, target_db, redis_server):
    """The worker's environment holds the passkey, the Flask secret and the AWS keys; pg_dump gets none."""
    from pathlib import Path

    import psycopg

    from app import create_app
    from app.jobs.queue import start_job
    from tests.helpers import wait_for
    from tests.support.databases import PG

    processes.worker(secrets_env)
    blocker = psycopg.connect(**{**PG, "dbname": target_db})
    blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # pg_dump waits here, alive, for us to look
    try:
        app = create_app(secrets_env)
        with app.app_context():
            job_id = start_job(app.config["SETTINGS"], redis_server, "backup", "ada")
        pid = wait_for(lambda: dump_children(target_db), timeout=60, message="the backup's pg_dump")[0]
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    finally:
        blocker.rollback()
        blocker.close()
    names = {entry.partition("=")[0] for entry in environ if entry}
    assert {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PATH"} <= names
    for name in ("RESTORE_PASSKEY", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "REDIS_URL",
                 "OIDC_CLIENT_SECRET", "BACKUP_ENCRYPTION_IDENTITY_FILE"):  # fmt: skip
        assert name not in names
    joined = "\n".join(environ)
    for secret in ("passkey-that-must-never-leak-4417", "flask-secret-that-must-never-leak-2201",
                   "aws-secret-that-must-never-leak-9931", "oidc-client-secret-that-must-never-leak-7761"):  # fmt: skip
        assert secret not in joined
    wait_for_job(redis_server, job_id)


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
