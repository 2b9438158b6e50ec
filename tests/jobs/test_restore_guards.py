"""Restore's guards: the passkey, the exact database name, admins only, one job at a time (and no
recent backup asked for: the job backs up what it replaces)."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.naming import backup_filename
from tests.helpers import (
    PASSKEY,
    AuthActions,
    backup_run_in_process,
    put_signed_backup,
    restore_api,
    restore_through_api,
    signed_in,
    storage_of,
)
from tests.jobs import test_restore
from tests.support.databases import table_fingerprint

admin = test_restore.admin  # fixtures


def test_wrong_passkey_is_refused_audited_limited_and_never_stored(app, client, admin, redis_server, caplog):
    caplog.set_level(logging.DEBUG)
    filename = backup_run_in_process(app)["result"]["filename"]
    wrong = "not-the-passkey-7781"
    for _ in range(5):
        refused = restore_api(client, admin, filename, passkey=wrong)
        assert refused.status_code == 403 and refused.get_json()["error"] == "Wrong passkey"
    limited = restore_api(client, admin, filename)  # even the right one waits now
    assert limited.status_code == 429 and "Too many wrong passkeys" in limited.get_json()["error"]

    from app.store.models import AuditEvent

    with app.app_context():
        refusals = AuditEvent.query.filter_by(action="restore", outcome="refused").all()
        assert len(refusals) == 6 and refusals[0].username == "ada" and refusals[0].detail == "Wrong passkey"
        text = " ".join(f"{e.detail} {e.target} {e.username}" for e in AuditEvent.query.all())
    namespace = app.config["SETTINGS"].redis_namespace
    stored = b" ".join(
        redis_server.dump(key) or b""
        for key in [*redis_server.scan_iter(f"{namespace}*"), *redis_server.scan_iter("rq:*")]
    )
    for secret in (wrong, PASSKEY):
        assert secret not in text and secret not in caplog.text and secret.encode() not in stored


def test_a_restore_with_no_recent_backup_proceeds_and_its_job_makes_the_safety_backup(app, client, admin, make_user,
                                                                                     target_db):  # fmt: skip
    """Only a backup from two hours ago, and nothing newer: the page offers Restore (nothing to make first),
    the API takes it, and the job's safety backup of the replaced database is a new file, not the old one."""
    made = backup_run_in_process(app)["result"]["filename"]
    # File names count whole seconds: the safety backup, made in a later one, cannot take `made`'s name.
    time.sleep(1)
    storage = storage_of(app)
    old = backup_filename("pharmatracker", "staging", datetime.now(UTC) - timedelta(hours=2), ZoneInfo("Asia/Kolkata"))
    put_signed_backup(app, old, storage.get_bytes(made))
    for name in (made, made + ".json"):
        storage.delete(name)
    test_restore.change_live(target_db)
    changed = table_fingerprint(target_db)

    page_client, _ = signed_in(app, make_user, "admin", "root")
    page = page_client.get(f"/backups/{old}/restore").get_data(as_text=True)
    assert "You do not need to make a backup first" in page and "Create safety backup" not in page
    assert " disabled " not in re.search(r'<input [^>]*id="submit"[^>]*>', page)[0]

    status = restore_through_api(app, client, admin, old)
    assert status["status"] == "finished", status["error"]
    safety = status["result"]["safety_backup"]
    assert safety and safety not in (old, made) and storage.stat(safety) is not None
    undone = restore_through_api(app, client, admin, safety)
    assert undone["status"] == "finished", undone["error"]
    assert table_fingerprint(target_db) == changed


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
    assert refused.status_code == 409 and "Another backup or restore" in refused.get_json()["error"]


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
    assert "Restore is disabled" in page and "<fieldset class=\"plain\" disabled>" in page


def test_a_passkey_hash_works_instead_of_the_passkey(make_app):
    import hashlib

    from app.domain.restore import passkey_matches

    digest = hashlib.sha256(b"s3cret passkey").hexdigest()
    assert passkey_matches("s3cret passkey", None, digest)
    assert not passkey_matches("s3cret passkeY", None, digest)
    assert not passkey_matches("", None, None)
