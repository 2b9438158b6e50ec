"""People and accountability: users, roles, my account, API tokens and the audit log."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.store.models import ApiToken, AuditEvent, User, utcnow
from tests.accounts.test_sessions import use_set_password_link
from tests.helpers import PASSWORD, AuthActions, post, sign_in, signed_in, user_named

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached


@pytest.fixture
def admin(app, make_user):
    make_user("ada", "admin")
    return sign_in(app, "ada")


def test_an_admin_adds_a_user_with_a_password(app, admin):
    client, auth = admin
    response = post(client, auth, "/users", {"username": "olga", "role": "operator", "password": "olga's long pass"},
                    page="/users")  # fmt: skip
    assert response.status_code == 303
    page = client.get("/users").get_data(as_text=True)
    assert "olga" in page and "Added operator olga." in page
    assert sign_in(app, "olga", "olga's long pass")  # she can sign in with it
    with app.app_context():
        event = AuditEvent.query.filter_by(action="user.create", target="olga").one()
        assert event.username == "ada" and "olga's long pass" not in (event.detail or "")


def test_an_added_user_without_a_password_gets_a_one_time_link(app, admin):
    client, auth = admin
    page = post(client, auth, "/users", {"username": "vic", "role": "viewer", "password": ""}, page="/users")
    link = re.search(
        r'<code id="set-password-link">http://localhost(/set-password/#[^<]+)</code>', page.get_data(as_text=True)
    )
    assert link, page.get_data(as_text=True)
    visitor = app.test_client()
    form = visitor.get("/set-password/")  # what the browser asks for: the secret after '#' is never sent
    assert form.status_code == 200 and "Set your password" in form.get_data(as_text=True)
    short = use_set_password_link(visitor, link.group(1), "short")
    assert short.status_code == 400 and "at least 10 characters" in short.get_data(as_text=True)
    done = use_set_password_link(visitor, link.group(1), "vic's new password")
    assert done.status_code == 303
    assert use_set_password_link(visitor, link.group(1), "another password 1").status_code == 404  # used once, gone
    assert AuthActions(app.test_client()).login("vic", "vic's new password").status_code == 302


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": "", "role": "viewer"}, "This field is required."),
        ({"username": "two words", "role": "viewer"}, "without spaces"),
        ({"username": "ada", "role": "viewer"}, "already exists"),
        ({"username": "x", "role": "root"}, "Not a valid choice"),
        ({"username": "x", "role": "viewer", "password": "short"}, "at least 10 characters"),
    ],
)
def test_bad_new_users_are_refused_with_a_message(app, admin, data, message):
    client, auth = admin
    response = post(client, auth, "/users", data, page="/users")
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    with app.app_context():
        assert User.query.count() == 1


def test_change_role_and_the_last_admin_guard(app, admin, make_user):
    client, auth = admin
    ada = user_named(app, "ada")
    refused = post(client, auth, f"/users/{ada.id}/role", {"role": "viewer"}, page="/users")
    assert refused.status_code == 303
    assert "Not changed: ada is the last active admin" in client.get("/users").get_data(as_text=True)
    refused = post(client, auth, f"/users/{ada.id}/active", page="/users")
    assert "you cannot disable your own account" in client.get("/users").get_data(as_text=True)
    assert user_named(app, "ada").role == "admin" and user_named(app, "ada").active

    make_user("bob", "viewer")
    bob = user_named(app, "bob")
    post(client, auth, f"/users/{bob.id}/role", {"role": "admin"}, page="/users")
    assert user_named(app, "bob").role == "admin"
    post(client, auth, f"/users/{ada.id}/role", {"role": "operator"}, page="/users")  # now allowed
    assert user_named(app, "ada").role == "operator"
    with app.app_context():
        changes = [(e.target, e.outcome, e.detail) for e in AuditEvent.query.filter(AuditEvent.action.like("user.%"))]
    assert ("bob", "ok", "viewer -> admin") in changes and ("ada", "ok", "admin -> operator") in changes
    assert any(outcome == "refused" for _, outcome, _ in changes)


def test_disabling_a_user_ends_their_session_and_tokens_at_once(app, admin, make_user, token_for):
    make_user("olga", "operator")
    olga_client, _ = sign_in(app, "olga")
    token = token_for("olga")
    assert olga_client.get("/").status_code == 200
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 200

    client, auth = admin
    post(client, auth, f"/users/{user_named(app, 'olga').id}/active", page="/users")
    assert olga_client.get("/").status_code == 302  # the open session is over
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 401
    assert AuthActions(app.test_client()).login("olga").status_code == 401

    post(client, auth, f"/users/{user_named(app, 'olga').id}/active", page="/users")  # enable again
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 200


def test_reset_password_gives_a_link_and_the_old_password_still_works_until_used(app, admin, make_user):
    make_user("olga", "operator")
    client, auth = admin
    page = post(client, auth, f"/users/{user_named(app, 'olga').id}/reset", page="/users").get_data(as_text=True)
    assert "/set-password/" in page
    with app.app_context():
        assert AuditEvent.query.filter_by(action="user.reset-link", target="olga").count() == 1


@pytest.mark.parametrize("url", ["/users", "/audit", "/audit.csv"])
def test_people_pages_are_for_admins_only(app, make_user, url):
    make_user("olga", "operator")
    client, auth = sign_in(app, "olga")
    assert client.get(url).status_code == 403
    assert post(client, auth, "/users", {"username": "x", "role": "admin", "password": "x" * 12}).status_code == 403
    assert app.test_client().get(url).status_code == 302  # signed out: to the sign-in page


def test_change_my_password(app, make_user):
    make_user("vic", "viewer")
    client, auth = sign_in(app, "vic")
    form = {"pw-current": "wrong one!!", "pw-new": "a brand new password", "pw-repeat": "a brand new password",
            "pw-submit": "Change password"}  # fmt: skip
    refused = post(client, auth, "/account", form, page="/account")
    assert refused.status_code == 400 and "not your current password" in refused.get_data(as_text=True)
    form["pw-current"] = PASSWORD
    assert post(client, auth, "/account", form, page="/account").status_code == 303
    assert AuthActions(app.test_client()).login("vic").status_code == 401
    assert AuthActions(app.test_client()).login("vic", "a brand new password").status_code == 302


def create_token(client, auth, name, role, days=""):
    page = post(client, auth, "/account", {"token-name": name, "token-role": role, "token-expires_days": days,
                                           "token-submit": "Create token"}, page="/account")  # fmt: skip
    match = re.search(r'<code id="new-token">(pgc_[^<]+)</code>', page.get_data(as_text=True))
    return page, match and match.group(1)


def test_my_tokens_shown_once_with_a_role_no_higher_than_mine_and_revocable(app, make_user):
    make_user("olga", "operator")
    client, auth = sign_in(app, "olga")
    page, plain = create_token(client, auth, "ci", "viewer")
    assert plain and page.status_code == 200
    headers = {"Authorization": f"Bearer {plain}"}
    api = app.test_client()
    assert api.get("/api/setting/backups", headers=headers).status_code == 200
    assert api.post("/api/setting/backup", headers=headers).status_code == 403  # a viewer token of an operator
    assert plain not in client.get("/account").get_data(as_text=True)  # shown once

    page, refused = create_token(client, auth, "too much", "admin")
    assert refused is None and page.status_code == 400

    token_id = db_token_id(app, "ci")
    assert post(client, auth, f"/account/tokens/{token_id}/revoke", page="/account").status_code == 303
    assert api.get("/api/setting/backups", headers=headers).status_code == 401
    make_user("eve", "admin")
    eve, eve_auth = sign_in(app, "eve")
    assert post(eve, eve_auth, f"/account/tokens/{token_id}/revoke", page="/account").status_code == 404


def db_token_id(app, name):
    with app.app_context():
        return db.session.execute(db.select(ApiToken.id).filter_by(name=name)).scalar_one()


def test_an_expired_token_is_refused(app, make_user):
    make_user("olga", "operator")
    client, auth = sign_in(app, "olga")
    _, plain = create_token(client, auth, "short-lived", "operator", days="1")
    headers = {"Authorization": f"Bearer {plain}"}
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    with app.app_context():
        token = db.session.get(ApiToken, db_token_id(app, "short-lived"))
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 401


def test_a_token_s_last_use_is_recorded_to_the_minute(app, make_user):
    """Polling a job every 50 ms must not write to the console store each time; the account page stays right."""
    make_user("olga", "operator")
    client, auth = sign_in(app, "olga")
    _, plain = create_token(client, auth, "poller", "operator", days="1")
    headers = {"Authorization": f"Bearer {plain}"}

    def last_used():
        with app.app_context():
            return db.session.get(ApiToken, db_token_id(app, "poller")).last_used_at

    assert last_used() is None and "<td>never</td>" in client.get("/account").text
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    first = last_used()
    assert first is not None and "<td>never</td>" not in client.get("/account").text
    for _ in range(3):
        assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    assert last_used() == first  # within the minute: not written again
    with app.app_context():
        token = db.session.get(ApiToken, db_token_id(app, "poller"))
        token.last_used_at = first - timedelta(minutes=2)
        db.session.commit()
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    assert last_used() > first - timedelta(seconds=1)


def seed_events(app):
    from app.store import audit

    with app.app_context():
        audit.record("backup", "ok", username="olga", target="a.dump", job_id="j1")
        audit.record("restore", "refused", username="ada", target="a.dump", detail="wrong passkey")
        audit.record("login", "failed", username="mallory", detail="wrong username or password")


def test_audit_log_filters_paginates_and_exports(app, admin):
    client, _ = admin
    seed_events(app)
    page = client.get("/audit?user=ada&action=restore").get_data(as_text=True)
    assert "wrong passkey" in page and "mallory" not in page and "a.dump" in page
    assert "mallory" in client.get("/audit?outcome=failed").get_data(as_text=True)
    assert "No events match." in client.get("/audit?since=2099-01-01").get_data(as_text=True)
    assert client.get("/audit?since=not-a-date").status_code == 400

    exported = client.get("/audit.csv?outcome=failed")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [(r["user"], r["action"], r["outcome"]) for r in rows] == [("mallory", "login", "failed")]

    from app.store import audit

    with app.app_context():
        for n in range(60):
            audit.record("backup", "ok", username="bulk", target=f"{n}.dump")
    first = client.get("/audit?user=bulk").get_data(as_text=True)
    assert ">59.dump<" in first and ">0.dump<" not in first and "Page 1 of 2" in first
    assert ">0.dump<" in client.get("/audit?user=bulk&page=2").get_data(as_text=True)


def test_the_audit_log_has_no_route_that_changes_it(app, admin):
    client, auth = admin
    for method in ("post", "put", "patch", "delete"):
        assert getattr(client, method)("/audit").status_code == 405
    routes = {rule.rule for rule in app.url_map.iter_rules() if "audit" in rule.rule}
    assert routes == {"/audit", "/audit.csv"}


def test_no_password_token_or_passkey_reaches_the_audit_log_or_the_logs(app, admin, make_user, caplog):
    caplog.set_level(logging.DEBUG)
    client, auth = admin
    secrets = ["olga's long pass", "a wrong password", "test-passkey-0451"]
    post(client, auth, "/users", {"username": "olga", "role": "operator", "password": secrets[0]}, page="/users")
    AuthActions(app.test_client()).login("olga", secrets[1])
    olga, olga_auth = sign_in(app, "olga", secrets[0])
    _, plain = create_token(olga, olga_auth, "ci", "operator")
    secrets.append(plain)
    with app.app_context():
        stored = " ".join(f"{e.username} {e.action} {e.target} {e.detail}" for e in AuditEvent.query.all())
        hashes = " ".join(u.password_hash for u in User.query.all())
    exported = client.get("/audit.csv").get_data(as_text=True)
    for secret in secrets:
        assert secret not in stored and secret not in exported and secret not in caplog.text and secret not in hashes


def test_audit_csv_cells_that_could_start_a_formula_are_escaped(app, make_user):
    from app.store import audit

    with app.app_context():
        audit.record("pin", "ok", username="mallory", target='=HYPERLINK("http://x")', detail="@SUM(A1:A9)")
        audit.record("pin", "ok", username="mallory", target="+1", detail="-2+3")
        audit.record("pin", "ok", username="mallory", target="plain", detail="a = b")
    client, _ = signed_in(app, make_user, "admin", "ada")
    rows = list(csv.DictReader(io.StringIO(client.get("/audit.csv").get_data(as_text=True))))
    cells = {(r["target"], r["detail"]) for r in rows if r["user"] == "mallory"}
    assert cells == {('\'=HYPERLINK("http://x")', "'@SUM(A1:A9)"), ("'+1", "'-2+3"), ("plain", "a = b")}


def test_unknown_query_arguments_on_the_audit_page_are_ignored(app, make_user):
    client, _ = signed_in(app, make_user, "admin", "ada")
    for query in ("endpoint=x", "endpoint=x&page=2", "_external=1", "user=ada&anchor=x"):
        assert client.get(f"/audit?{query}").status_code == 200, query
