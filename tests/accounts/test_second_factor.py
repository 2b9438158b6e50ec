"""Two-factor codes for local accounts: enrolment on /account (QR code drawn here, the secret as
text, confirmed with a code), the "Code" step after the password, wrong codes and their limit,
recovery codes used once, REQUIRE_2FA sending an account to enrolment first, an admin's reset.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest

from tests.helpers import PASSWORD, AuthActions


def page_text(response) -> str:
    return response.get_data(as_text=True)


def csrf(client, path: str) -> str:
    return AuthActions(client).csrf_token(path)


def enrol(client) -> tuple[str, list[str]]:
    """Set up two-factor codes as a person would; returns the secret and the recovery codes shown."""
    page = page_text(client.get("/account/two-factor"))
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    done = client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now(),
                                                    "csrf_token": csrf(client, "/account/two-factor")})  # fmt: skip
    assert done.status_code == 200, page_text(done)
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", page_text(done))
    return secret, codes


def next_code(secret: str) -> str:
    """The code of the next 30-second step (accepted: one step of drift), so it differs from one just used."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def password_step(client, username: str = "ada"):
    return AuthActions(client).login(username)


def code_step(client, code: str):
    return client.post("/login/code", data={"code": code, "csrf_token": csrf(client, "/login/code")})


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def audit_rows(app, prefix: str) -> list[tuple]:
    from app.extensions import db
    from app.store.models import AuditEvent

    with app.app_context():
        query = db.select(AuditEvent).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.id)
        return [(e.username, e.action, e.target, e.outcome, e.detail) for e in db.session.execute(query).scalars()]


@pytest.fixture
def enrolled(app, make_user):
    """ada, an admin with two-factor codes; returns (secret, recovery codes)."""
    make_user("ada", "admin")
    client = app.test_client()
    password_step(client)
    secret, codes = enrol(client)
    return secret, codes


def test_enrolment_shows_a_qr_code_and_the_secret_and_needs_a_right_code(app, client, auth, make_user):
    make_user("ada", "admin")
    auth.login("ada")
    account = page_text(client.get("/account"))
    assert "Two-factor codes" in account and "Set up two-factor codes" in account
    page = page_text(client.get("/account/two-factor"))
    qr = re.search(r'<img class="qr" src="data:image/svg\+xml[^"]*?(%3Csvg|<svg)[^"]*"', page)
    assert qr, "the QR code is an SVG in the page itself (no external service draws it)"
    secret = re.search(r'id="totp-secret">([A-Z2-7]{32})<', page).group(1)
    assert secret in page_text(client.get("/account/two-factor"))  # a reload keeps the same secret (QR still valid)

    wrong = client.post("/account/two-factor", data={"code": "000000", "csrf_token": csrf(client, "/account")})
    assert wrong.status_code == 400 and "That code does not match" in page_text(wrong)
    right = client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now(),
                                                     "csrf_token": csrf(client, "/account")})  # fmt: skip
    assert right.status_code == 200
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", page_text(right))
    assert len(codes) == 10 and len(set(codes)) == 10 and "They are shown only now" in page_text(right)
    assert "On since" in page_text(client.get("/account")) and "10 unused recovery codes left" in page_text(
        client.get("/account")
    )
    assert client.get("/account/two-factor").status_code == 302  # shown once: no way back to them

    from app.extensions import db
    from app.store.models import RecoveryCode, User

    with app.app_context():
        user = db.session.execute(db.select(User).where(User.username == "ada")).scalar_one()
        assert user.totp_secret and secret not in user.totp_secret  # kept encrypted
        hashes = [r.code_hash for r in db.session.execute(db.select(RecoveryCode)).scalars()]
        assert len(hashes) == 10 and not any(c.replace("-", "") in h for c in codes for h in hashes)
    assert [(r[1], r[3]) for r in audit_rows(app, "2fa.")] == [("2fa.enrol", "failed"), ("2fa.enrol", "ok")]


def test_sign_in_asks_for_a_code_after_the_password(app, enrolled):
    secret, _ = enrolled
    client = app.test_client()
    after_password = password_step(client)
    assert after_password.status_code == 303 and after_password.location == "/login/code"
    assert not signed_in(client)  # the password alone signs nobody in
    assert "Enter the six-digit code" in page_text(client.get("/login/code"))

    wrong = code_step(client, "123456" if next_code(secret) != "123456" else "654321")
    assert wrong.status_code == 401 and "Wrong code" in page_text(wrong)
    assert not signed_in(client)
    code = next_code(secret)
    right = code_step(client, code)
    assert right.status_code == 302 and right.location == "/"
    assert signed_in(client)

    # The same code a second time (someone who saw it over a shoulder) is refused.
    again = app.test_client()
    password_step(again)
    assert code_step(again, code).status_code == 401
    assert not signed_in(again)
    logins = [(r[3], r[4]) for r in audit_rows(app, "login")]
    assert ("ok", "with a two-factor code") in logins and logins.count(("failed", "wrong two-factor code")) == 2

    # Without the password step first there is no code step.
    stranger = app.test_client()
    assert stranger.get("/login/code").status_code == 302


def test_wrong_codes_are_rate_limited(app, enrolled):
    secret, _ = enrolled
    client = app.test_client()
    password_step(client)
    wrong = "000000" if next_code(secret) != "000000" else "111111"
    for _ in range(10):
        assert code_step(client, wrong).status_code == 401
    blocked = code_step(client, next_code(secret))  # even the right code, while the limit holds
    assert blocked.status_code == 429 and "Too many failed sign-ins" in page_text(blocked)
    assert not signed_in(client)
    assert ("ada", "login", None, "rate-limited", None) in audit_rows(app, "login")


def test_a_recovery_code_works_once(app, enrolled):
    _, codes = enrolled
    client = app.test_client()
    password_step(client)
    used = code_step(client, codes[3].upper().replace("-", " "))  # typed loosely
    assert used.status_code == 302 and signed_in(client)
    assert ("ada", "2fa.recovery-code", "ada", "ok", "9 recovery code(s) left") in audit_rows(app, "2fa.")
    assert "9 unused recovery codes left" in page_text(client.get("/account"))

    again = app.test_client()
    password_step(again)
    assert code_step(again, codes[3]).status_code == 401
    assert not signed_in(again)


def test_require_2fa_admins_sends_an_admin_to_enrolment_before_anything_else(make_app, make_user, app_env):
    app = make_app(REQUIRE_2FA="admins")
    with app.app_context():
        from app.accounts.people import create_user

        create_user("ada", "admin", PASSWORD, "test")
        create_user("vic", "viewer", PASSWORD, "test")
    ada = app.test_client()
    assert password_step(ada).status_code == 302  # no code yet: signed in, but only to enrol
    for path in ("/", "/users", "/account", "/audit"):
        answer = ada.get(path)
        assert answer.status_code == 302 and answer.location == "/account/two-factor", path
    assert "must have two-factor codes before you can use the console" in page_text(ada.get("/account/two-factor"))
    assert ada.get("/api/setting/backups").status_code == 403
    vic = app.test_client()
    password_step(vic, "vic")
    assert signed_in(vic)  # a viewer is not required to
    secret, _ = enrol(ada)
    assert signed_in(ada) and ada.get("/users").status_code == 200
    # From now on ada's sign-in has the code step.
    later = app.test_client()
    assert password_step(later).location == "/login/code"

    everyone = make_app(REQUIRE_2FA="all")
    vic = everyone.test_client()
    password_step(vic, "vic")
    assert vic.get("/").location == "/account/two-factor"


def test_an_admin_resets_a_second_factor_and_the_user_enrols_again(make_app, make_user):
    app = make_app(REQUIRE_2FA="admins")
    with app.app_context():
        from app.accounts.people import create_user, find_user

        create_user("ada", "admin", PASSWORD, "test")
        create_user("bob", "admin", PASSWORD, "test")
    ada = app.test_client()
    password_step(ada)
    ada_secret, _ = enrol(ada)
    bob = app.test_client()
    password_step(bob, "bob")
    enrol(bob)
    with app.app_context():
        ada_id = find_user("ada").id
    users_page = page_text(bob.get("/users"))
    assert "Reset two-factor codes of ada" in users_page
    reset = bob.post(f"/users/{ada_id}/second-factor/reset", data={"csrf_token": csrf(bob, "/users")})
    assert reset.status_code == 303
    assert "Two-factor codes of ada are reset" in page_text(bob.get("/users"))
    reset_row = (
        "bob",
        "2fa.reset",
        "ada",
        "ok",
        "two-factor codes and recovery codes removed; the user must enrol again",
    )
    assert reset_row in audit_rows(app, "2fa.")
    assert not signed_in(ada)  # her sessions ended (the phone may be in someone else's hands)

    again = app.test_client()
    assert password_step(again).status_code == 302  # no code step any more…
    assert again.get("/").location == "/account/two-factor"  # …and enrolment first, with a new secret
    new_secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page_text(again.get("/account/two-factor"))).group(1)
    assert new_secret != ada_secret


def test_single_sign_on_accounts_have_no_local_second_factor():
    from app.accounts.second_factor import required_for
    from app.config import Settings
    from app.store.models import User

    settings = Settings.from_env({"DATABASE_URL": "postgresql://postgres@127.0.0.1/x", "REQUIRE_2FA": "all"})
    assert not required_for(User(username="a", role="admin", sso_subject="u-1"), settings)
    assert required_for(User(username="b", role="viewer"), settings)
    assert Settings.from_env({"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}).require_2fa == "admins"
