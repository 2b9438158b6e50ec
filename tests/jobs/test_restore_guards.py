"""Restore's guards: the passkey, a recent backup, the exact database name, admins only, one job at a time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.naming import backup_filename
from tests.helpers import (
    PASSKEY,
    AuthActions,
    backup_run_in_process,
    restore_api,
    storage_of,
)
from tests.jobs import test_restore

admin = test_restore.admin  # fixtures


def test_wrong_passkey_is_refused_audited_limited_and_never_stored(app, client, admin, redis_server, caplog):
    caplog.set_level(logging.DEBUG)
    filename = backup_run_in_process(app)["result"]["filename"]
    wrong = "not-the-passkey-7781"
    for _ in range(5):
        refused = restore_api(client, admin, filename, passkey=wrong)
        assert refused.status_code == 403 and refused.get_json()["error"] == "wrong passkey"
    limited = restore_api(client, admin, filename)  # even the right one waits now
    assert limited.status_code == 429 and "too many wrong passkeys" in limited.get_json()["error"]

    from app.store.models import AuditEvent

    with app.app_context():
        refusals = AuditEvent.query.filter_by(action="restore", outcome="refused").all()
        assert len(refusals) == 6 and refusals[0].username == "ada" and refusals[0].detail == "wrong passkey"
        text = " ".join(f"{e.detail} {e.target} {e.username}" for e in AuditEvent.query.all())
    namespace = app.config["SETTINGS"].redis_namespace
    stored = b" ".join(
        redis_server.dump(key) or b""
        for key in [*redis_server.scan_iter(f"{namespace}*"), *redis_server.scan_iter("rq:*")]
    )
    for secret in (wrong, PASSKEY):
        assert secret not in text and secret not in caplog.text and secret.encode() not in stored


def test_no_recent_backup_is_409_on_the_api_and_an_offer_on_the_page(app, client, admin, make_user):
    zone = ZoneInfo("Asia/Kolkata")
    old = backup_filename("pharmatracker", "staging", datetime.now(UTC) - timedelta(hours=2), zone)
    storage_of(app).put_bytes(old, b"x")
    refused = restore_api(client, admin, old)
    assert refused.status_code == 409 and "create a safety backup first" in refused.get_json()["error"]

    page_client = app.test_client()
    AuthActions(page_client).login("ada")
    page = page_client.get(f"/backups/{old}/restore").get_data(as_text=True)
    assert "No backup of staging from the last 5 minute(s)" in page
    assert "Create safety backup" in page and f'value="/backups/{old}/restore"' in page


def test_the_page_needs_the_exact_database_name(app, target_db, make_user, redis_server):
    filename = backup_run_in_process(app)["result"]["filename"]
    make_user("ada", "admin")
    browser = app.test_client()
    auth = AuthActions(browser)
    auth.login("ada")
    url = f"/backups/{filename}/restore"
    page = browser.get(url).get_data(as_text=True)
    assert f"Type {target_db} to confirm" in page and "Restore database" in page and "Passkey" in page
    response = browser.post(
        url, data={"passkey": PASSKEY, "confirm": target_db.upper(), "csrf_token": auth.csrf_token(url)}
    )
    assert response.status_code == 400
    assert f"Type the database name exactly: {target_db}" in response.get_data(as_text=True)
    from rq import Queue

    assert Queue(app.config["SETTINGS"].redis_namespace, connection=redis_server).count == 0
    ok = browser.post(url, data={"passkey": PASSKEY, "confirm": target_db, "csrf_token": auth.csrf_token(url)})
    assert ok.status_code == 303 and ok.headers["Location"].startswith("/jobs/")


@pytest.mark.parametrize("name", ["nope.dump", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", ".partial-x"])
def test_unknown_or_traversal_names_are_404(app, client, admin, name):
    assert restore_api(client, admin, name).status_code == 404


def test_bad_json_is_400(client, admin):
    for body in (
        None,
        [],
        {"filename": 3, "passkey": PASSKEY},
        {"filename": "x.dump"},
        {"filename": "", "passkey": ""},
    ):
        response = client.post("/api/setting/restore", headers=admin, json=body)
        assert response.status_code == 400, body
        assert "error" in response.get_json()


def test_roles_restore_is_for_admins_only(app, client, make_user, token_for):
    filename = backup_run_in_process(app)["result"]["filename"]
    make_user("olga", "operator")
    refused = restore_api(client, token_for("olga"), filename)
    assert refused.status_code == 403 and "admin" in refused.get_json()["error"]
    browser = app.test_client()
    AuthActions(browser).login("olga")
    assert browser.get(f"/backups/{filename}/restore").status_code == 403
    assert "Restore</a>" not in browser.get("/").get_data(as_text=True)


def test_a_restore_while_a_backup_runs_is_409(app, client, admin):
    filename = backup_run_in_process(app)["result"]["filename"]
    assert client.post("/api/setting/backup", headers=admin).status_code == 202  # queued, holds the lock
    refused = restore_api(client, admin, filename)
    assert refused.status_code == 409 and "another backup or restore" in refused.get_json()["error"]


def test_without_a_passkey_restore_is_disabled(make_app, make_user, token_for):
    app = make_app(RESTORE_PASSKEY="")
    filename = backup_run_in_process(app)["result"]["filename"]
    from app.accounts.people import create_user
    from app.extensions import db
    from app.store.models import ApiToken

    with app.app_context():
        user = create_user("ada", "admin", "x" * 12, created_by="test")
        token, plain = ApiToken.issue(user)
        db.session.add(token)
        db.session.commit()
    client = app.test_client()
    refused = restore_api(client, {"Authorization": f"Bearer {plain}"}, filename)
    assert refused.status_code == 503 and "disabled" in refused.get_json()["error"]
    AuthActions(client).login("ada", "x" * 12)
    page = client.get(f"/backups/{filename}/restore").get_data(as_text=True)
    assert "Restore is disabled" in page and "<fieldset disabled>" in page


def test_a_passkey_hash_works_instead_of_the_passkey(make_app):
    import hashlib

    from app.domain.restore import passkey_matches

    digest = hashlib.sha256(b"s3cret passkey").hexdigest()
    assert passkey_matches("s3cret passkey", None, digest)
    assert not passkey_matches("s3cret passkeY", None, digest)
    assert not passkey_matches("", None, None)
