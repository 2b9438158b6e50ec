"""Sessions that end: every session-ending event ends the user's other
sessions, and signing out ends this one on the server, so a copied cookie stops working."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.store.models import AuditEvent, LoginSession, User
from tests.helpers import PASSWORD, AuthActions, post, sign_in, user_named

pytestmark = pytest.mark.web_only  # sign-in, roles and forms: the target database is never reached

NEW_PASSWORD = "a brand new password"


def assert_signed_out(client, path: str = "/") -> None:
    response = client.get(path)
    assert response.status_code == 302, (path, response.status_code)
    assert response.headers["Location"].startswith("/login"), response.headers["Location"]


def assert_signed_in(client, username: str) -> None:
    page = client.get("/account")
    assert page.status_code == 200
    assert f"You are <strong>{username}</strong>" in page.get_data(as_text=True)


@pytest.fixture
def admin(app, make_user):
    make_user("ada", "admin")
    return sign_in(app, "ada")


@pytest.fixture
def olga(app, make_user):
    """olga, an operator, signed in twice: `first` acts, `second` is the other browser."""
    make_user("olga", "operator")
    first, second = sign_in(app, "olga"), sign_in(app, "olga")
    assert_signed_in(first[0], "olga")
    assert_signed_in(second[0], "olga")
    return first, second


def set_password_link(client, auth, user_id: int) -> str:
    page = post(client, auth, f"/users/{user_id}/reset", page="/users").get_data(as_text=True)
    match = re.search(r'<code id="set-password-link">http://localhost(/set-password/#[^<]+)</code>', page)
    assert match, page
    return match.group(1)


def use_set_password_link(visitor, link: str, new: str, repeat: str | None = None):
    """What the page's script does with a link (path#secret): open the path (the browser never sends the
    fragment), then post the secret from the fragment with the new password."""
    path, _, secret = link.partition("#")
    token = AuthActions(visitor).csrf_token(path)
    return visitor.post(path, data={"secret": secret, "new": new, "repeat": new if repeat is None else repeat,
                                    "csrf_token": token})  # fmt: skip


# --------------------------------------------------------------------------- each event ends a second session


def test_changing_my_password_ends_my_other_sessions_but_not_this_one(app, olga):
    (client, auth), (other, _) = olga
    form = {"pw-current": PASSWORD, "pw-new": NEW_PASSWORD, "pw-repeat": NEW_PASSWORD, "pw-submit": "Change password"}
    changed = post(client, auth, "/account", form, page="/account")
    assert changed.status_code == 303
    assert_signed_out(other, "/account")
    page = client.get("/account")  # the browser that changed it goes on, and says what happened
    assert page.status_code == 200
    assert "You are signed out everywhere else, and your API tokens are revoked." in page.get_data(as_text=True)
    assert_signed_in(client, "olga")
    assert AuthActions(app.test_client()).login("olga", NEW_PASSWORD).status_code == 302


def test_using_a_set_password_link_ends_every_session(app, admin, olga):
    (client, _), (other, _) = olga
    link = set_password_link(*admin, user_named(app, "olga").id)
    assert_signed_in(client, "olga")  # issuing the link ends nothing; using it does
    done = use_set_password_link(app.test_client(), link, NEW_PASSWORD)
    assert done.status_code == 303
    assert_signed_out(client)
    assert_signed_out(other, "/account")


def test_an_admin_disabling_then_enabling_a_user_ends_their_sessions(app, admin, olga, token_for):
    admin_client, admin_auth = admin
    (client, _), (other, _) = olga
    olga_id = user_named(app, "olga").id
    post(admin_client, admin_auth, f"/users/{olga_id}/active", page="/users")  # disable
    assert_signed_out(client)
    post(admin_client, admin_auth, f"/users/{olga_id}/active", page="/users")  # enable
    assert_signed_out(other, "/account")  # enabling brings no old session back
    assert_signed_in(sign_in(app, "olga")[0], "olga")  # she signs in again as usual
    assert_signed_in(admin_client, "ada")  # the admin's own session is untouched


def test_an_admin_changing_a_role_ends_that_users_sessions(app, admin, olga):
    admin_client, admin_auth = admin
    (client, _), (other, _) = olga
    answer = post(admin_client, admin_auth, f"/users/{user_named(app, 'olga').id}/role", {"role": "viewer"},
                  page="/users")  # fmt: skip
    assert answer.status_code == 303
    assert_signed_out(client)
    assert_signed_out(other, "/account")
    again, _ = sign_in(app, "olga")
    assert "You are <strong>olga</strong>, viewer." in again.get("/account").get_data(as_text=True)


def test_sign_out_everywhere_ends_every_session_and_is_audited(app, olga):
    (client, auth), (other, _) = olga
    page = client.get("/account").get_data(as_text=True)
    assert 'action="/account/sign-out-everywhere"' in page and "Sign out everywhere" in page
    answer = post(client, auth, "/account/sign-out-everywhere", page="/account")
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"
    assert "Signed out everywhere" in client.get("/login").get_data(as_text=True)
    assert_signed_out(client, "/account")
    assert_signed_out(other, "/account")
    assert AuthActions(app.test_client()).login("olga").status_code == 302  # the password still works
    with app.app_context():
        event = AuditEvent.query.filter_by(action="logout-everywhere").one()
        assert (event.username, event.target, event.outcome) == ("olga", "olga", "ok")
        assert event.detail == "2 open session(s) ended, 0 API token(s) revoked" and event.address == "127.0.0.1"
        assert PASSWORD not in f"{event.detail} {event.target}"


def test_sign_out_everywhere_needs_the_csrf_token(app, olga):
    (client, _), (other, _) = olga
    assert client.post("/account/sign-out-everywhere").status_code == 400
    assert_signed_in(client, "olga")
    assert_signed_in(other, "olga")


def test_other_users_sessions_are_untouched(app, admin, olga):
    (client, auth), _ = olga
    post(client, auth, "/account/sign-out-everywhere", page="/account")
    assert_signed_in(admin[0], "ada")


# --------------------------------------------------------------------------- signing out, on the server


def test_signing_out_makes_a_copied_cookie_useless_but_other_browsers_stay(app, olga):
    (client_a, auth_a), (client_b, _) = olga
    copy = app.test_client()
    copy.set_cookie("session", client_a.get_cookie("session").value)
    assert_signed_in(copy, "olga")  # the copy works while A is signed in
    assert auth_a.logout().status_code == 302
    assert_signed_out(client_a)
    assert_signed_out(copy)
    assert_signed_out(copy, "/account")
    assert copy.get("/api/setting/backups").status_code == 401  # the API takes no dead session either
    assert_signed_in(client_b, "olga")
    with app.app_context():
        records = db.session.execute(db.select(LoginSession).order_by(LoginSession.started_at)).scalars().all()
        assert [r.ended_at is not None for r in records] == [True, False]


def test_a_session_from_before_the_epoch_is_refused_even_with_its_sign_in_open(app, olga):
    """The epoch alone ends a session: bumping it (as every event above does) is enough."""
    (client, _), _ = olga
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="olga")).scalar_one()
        user.session_epoch += 1
        db.session.commit()
        assert LoginSession.query.filter(LoginSession.ended_at.is_(None)).count() == 2
    assert_signed_out(client)


def test_only_a_digest_of_the_session_id_is_stored(app, olga):
    (client, _), _ = olga
    with client.session_transaction() as session:
        sid = session["login_sid"]
    with app.app_context():
        stored = {r.sid_hash for r in LoginSession.query.all()}
        assert LoginSession.find(sid) is not None  # found by its digest
    assert len(stored) == 2 and sid not in stored


def test_sign_ins_past_the_cookie_lifetime_are_forgotten_at_the_next_sign_in(app, olga):
    from datetime import timedelta

    from app.store.models import utcnow

    (old_client, _), _ = olga
    with app.app_context():
        for record in LoginSession.query.all():
            record.started_at = utcnow() - app.permanent_session_lifetime - timedelta(minutes=1)
        db.session.commit()
    sign_in(app, "olga")
    with app.app_context():
        assert LoginSession.query.count() == 1  # only the new one
    assert_signed_out(old_client)


# --------------------------------------------------------------------------- API tokens


def test_sign_out_everywhere_revokes_api_tokens_too(app, olga, token_for):
    """Security review M7: a token made with a stolen cookie survived "Sign out everywhere"."""
    (client, auth), _ = olga
    headers = token_for("olga")
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    post(client, auth, "/account/sign-out-everywhere", page="/account")
    assert_signed_out(client)
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 401
    with app.app_context():
        assert AuditEvent.query.filter_by(action="logout-everywhere").one().detail.endswith("1 API token(s) revoked")


def test_a_disabled_users_token_is_refused(app, admin, olga, token_for):
    headers = token_for("olga")
    api = app.test_client()
    assert api.get("/api/setting/backups", headers=headers).status_code == 200
    post(*admin, f"/users/{user_named(app, 'olga').id}/active", page="/users")
    refused = api.get("/api/setting/backups", headers=headers)
    assert refused.status_code == 401 and "sign-in required" in refused.get_json()["error"]
