"""Attacks on API tokens: a stolen cookie cannot make one, a password change revokes them, roles stop at the asker's."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.store.models import ApiToken, AuditEvent, User, utcnow
from tests.accounts.test_second_factor import enrol, next_code, password_step
from tests.accounts.test_security_sign_in import token_role_on
from tests.accounts.test_sso import sso_settings, sso_sign_in
from tests.helpers import PASSWORD, AuthActions, post, sign_in, signed_in


def make_token(client, auth, role: str, proof: str | None = None, name: str = "ci"):
    data = {"token-name": name, "token-role": role, "token-expires_days": "", "token-submit": "Create token"}
    if proof is not None:
        data["token-proof"] = proof
    page = post(client, auth, "/account", data, page="/account")
    match = re.search(r'<code id="new-token">(pgc_[^<]+)</code>', page.get_data(as_text=True))
    return page, match and {"Authorization": f"Bearer {match[1]}"}


def test_a_stolen_cookie_cannot_make_a_token_without_the_password(app, make_user):
    thief, auth = signed_in(app, make_user, "admin", "ada")  # a copy of ada's session cookie, nothing more
    assert 'name="token-proof"' in thief.get("/account").get_data(as_text=True)
    page, token = make_token(thief, auth, "admin")
    assert page.status_code == 400 and token is None and "Give your password" in page.get_data(as_text=True)
    page, token = make_token(thief, auth, "admin", proof="a guess at it")
    assert page.status_code == 400 and token is None
    with app.app_context():
        assert db.session.execute(db.select(ApiToken)).first() is None
        refused = AuditEvent.query.filter_by(action="token.create", outcome="refused").count()
        assert refused == 2
    # Only ada, who knows it, gets one; then, for a few minutes, without typing it again.
    page, token = make_token(thief, auth, "admin", proof=PASSWORD)
    assert page.status_code == 200 and token_role_on(app, token) == 200
    assert make_token(thief, auth, "viewer", name="second")[1] is not None


def test_a_fresh_code_from_the_app_proves_it_too(app, make_user):
    thief, auth = signed_in(app, make_user, "operator", "olga")
    olga = app.test_client()
    password_step(olga, "olga")
    secret, _ = enrol(olga)
    page, token = make_token(thief, auth, "operator", proof=next_code(secret))
    assert page.status_code == 200 and token is not None


def test_wrong_proofs_are_limited_like_wrong_sign_ins(app, make_user):
    from app.web.identity import CODE_FAILURES_ALLOWED

    thief, auth = signed_in(app, make_user, "admin", "ada")
    for i in range(CODE_FAILURES_ALLOWED):
        assert make_token(thief, auth, "admin", proof=f"guess {i}")[0].status_code == 400
    page, token = make_token(thief, auth, "admin", proof=PASSWORD)  # even the right one, now
    assert token is None and "Too many failed attempts" in page.get_data(as_text=True)


def test_a_stolen_cookie_cannot_guess_the_password_on_the_change_password_form(app, make_user):
    from app.web.identity import CODE_FAILURES_ALLOWED

    thief, auth = signed_in(app, make_user, "viewer", "vic")

    def change(current: str):
        return post(thief, auth, "/account", {"pw-current": current, "pw-new": "the thief's password",
                                              "pw-repeat": "the thief's password", "pw-submit": "Change password"},
                    page="/account")  # fmt: skip

    for i in range(CODE_FAILURES_ALLOWED):
        assert "not your current password" in change(f"guess {i}").get_data(as_text=True)
    assert "Too many failed attempts" in change(PASSWORD).get_data(as_text=True)
    assert AuthActions(app.test_client()).login("vic").status_code == 302  # unchanged


def test_a_password_change_revokes_tokens(app, make_user, token_for):
    make_user("vic", "viewer")
    client, auth = sign_in(app, "vic")
    headers = token_for("vic")
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    form = {"pw-current": PASSWORD, "pw-new": "a brand new password", "pw-repeat": "a brand new password",
            "pw-submit": "Change password"}  # fmt: skip
    assert post(client, auth, "/account", form, page="/account").status_code == 303
    assert "your API tokens are revoked" in client.get("/account").get_data(as_text=True)
    assert app.test_client().get("/api/setting/backups", headers=headers).status_code == 401


def test_token_roles_offered_stop_at_what_the_asker_acts_as(app, make_user):
    from app.accounts.people import PeopleError, create_token, find_user

    make_user("ada", "admin")
    with app.app_context():
        viewer_token = {"Authorization": f"Bearer {create_token(find_user('ada'), 'ro', 'viewer', None, 'test')}"}
    page = app.test_client().get("/account", headers=viewer_token).get_data(as_text=True)
    assert re.findall(r'<option[^>]*value="(\w+)"', page) == ["viewer"]  # ada's read-only token offers no more
    with app.app_context(), pytest.raises(PeopleError, match="higher role than viewer"):
        create_token(find_user("ada"), "up", "admin", None, "ada", cap="viewer")
    with app.app_context():
        assert [t.role for t in db.session.execute(db.select(ApiToken)).scalars()] == ["viewer"]
    # Over HTTP, password given: the viewer token cannot make an admin one.
    data = {"token-name": "up", "token-role": "admin", "token-expires_days": "", "token-proof": PASSWORD,
            "token-submit": "Create token"}  # fmt: skip
    answer = app.test_client().post("/account", headers=viewer_token, data=data)
    assert answer.status_code in (400, 403) and "pgc_" not in answer.get_data(as_text=True)
    with app.app_context():
        assert [t.role for t in db.session.execute(db.select(ApiToken)).scalars()] == ["viewer"]


def test_an_sso_users_token_follows_the_providers_role_and_ends_with_the_sign_in(make_app, oidc_provider):
    app = make_app(**sso_settings(oidc_provider, OIDC_SESSION_HOURS="2"))
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    laptop = app.test_client()
    sso_sign_in(laptop, oidc_provider, "u-1")
    page, token = make_token(laptop, AuthActions(laptop), "admin")  # the provider signed her in just now
    assert token is not None and "2 hours after your last single sign-on" in page.get_data(as_text=True)
    assert token_role_on(app, token) == 200
    with app.app_context():
        record = db.session.execute(db.select(ApiToken)).scalar_one()
        assert record.expires_at - utcnow() < timedelta(hours=2)

    # The provider takes her out of the admins' group: the next sign-in lowers the token with her.
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["developers"])
    sso_sign_in(app.test_client(), oidc_provider, "u-1")
    assert token_role_on(app, token) == 403
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 200  # still an operator

    # Nobody signs in for OIDC_SESSION_HOURS: nothing has asked the provider since, so the token stops.
    with app.app_context():
        alice = db.session.execute(db.select(User).filter_by(username="alice")).scalar_one()
        alice.last_login_at = utcnow() - timedelta(hours=2, minutes=1)
        db.session.query(ApiToken).update({ApiToken.expires_at: None})  # even one made before this bound
        db.session.commit()
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 401

    # Signed in again (operator), then out of every group: sessions and tokens end at that refusal.
    sso_sign_in(app.test_client(), oidc_provider, "u-1")
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 200
    oidc_provider.set_user("u-1", preferred_username="alice", groups=[])
    assert sso_sign_in(app.test_client(), oidc_provider, "u-1").status_code == 403
    assert app.test_client().get("/api/setting/backups", headers=token).status_code == 401
