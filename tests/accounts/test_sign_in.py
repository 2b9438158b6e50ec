"""Signing in and out: wrong passwords refused and audited, CSRF on the form, `next` never leaves the site."""

from __future__ import annotations

import pytest

from app.store.models import AuditEvent
from tests.helpers import PASSWORD


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


