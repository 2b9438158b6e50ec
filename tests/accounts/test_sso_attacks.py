"""Attacks through single sign-on: the provider's error text is never shown, and no SSO name passes for a local one."""

from __future__ import annotations

from app.extensions import db
from app.store.models import AuditEvent, User
from tests.accounts.test_sso import sso_settings, sso_sign_in


def test_the_callbacks_error_text_is_never_shown(make_app, oidc_provider):
    app = make_app(**sso_settings(oidc_provider))
    planted = "Your account is locked. Call +1 555 0100 to unlock it"
    for error, shown in (("access_denied", "the sign-in was denied at the identity provider"),
                         ("made_up_by_anyone", "the identity provider refused the sign-in")):  # fmt: skip
        page = app.test_client().get("/login/oidc/callback", query_string={"error": error,
                                                                           "error_description": planted})
        text = page.get_data(as_text=True)
        assert page.status_code == 400 and shown in text
        assert "Call +1 555" not in text and "made_up_by_anyone" not in text
    with app.app_context():
        assert all("555" not in (e.detail or "") for e in AuditEvent.query.filter_by(action="sso.login"))


def test_sso_names_that_look_like_a_local_one_are_refused(make_app, make_user, oidc_provider):
    app = make_app(**sso_settings(oidc_provider))
    make_user("rtadmin", "admin")
    # Upper case, a Cyrillic "а", full-width letters
    for sub, name in (("u-7", "RTADMIN"), ("u-8", "rt\u0430dmin"), ("u-9", "\uff52\uff54admin")):
        oidc_provider.set_user(sub, preferred_username=name, groups=["dba"])
        refused = sso_sign_in(app.test_client(), oidc_provider, sub)
        assert refused.status_code == 403, name
    with app.app_context():
        assert [u.username for u in db.session.execute(db.select(User)).scalars()] == ["rtadmin"]
        details = [e.detail for e in AuditEvent.query.filter_by(action="sso.login", outcome="refused")]
    assert "looks like 'rtadmin'" in details[0] and "characters this console does not accept" in details[1]


def test_an_unverified_email_is_no_username(make_app, oidc_provider):
    app = make_app(**sso_settings(oidc_provider))
    oidc_provider.set_user("u-5", email="ceo@example.com", email_verified=False, groups=["dba"])
    assert sso_sign_in(app.test_client(), oidc_provider, "u-5").status_code == 403
    oidc_provider.set_user("u-5", email="ceo@example.com", email_verified=True, groups=["dba"])
    assert sso_sign_in(app.test_client(), oidc_provider, "u-5").status_code == 302
