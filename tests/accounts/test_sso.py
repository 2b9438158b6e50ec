"""Single sign-on through a real OpenID Connect provider (oidc-provider-mock on 127.0.0.1): groups
mapped to roles, a role that follows the groups at each sign-in, refusals of a tampered state, a
wrong nonce, an expired ID token and one from another provider, the provider being down, and the
password form as a break-glass (LOCAL_LOGIN). The browser test is in tests/browser/.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.helpers import PASSWORD, AuthActions
from tests.support.oidc import Provider, run_provider
from tests.support.processes import free_port

CLIENT_SECRET = "oidc-client-secret-that-must-never-leak-5150"
ROLE_MAP = "dba=admin,developers=operator"


def sso_settings(provider: Provider, **extra: str) -> dict[str, str]:
    return {
        "OIDC_ISSUER": provider.url,
        "OIDC_CLIENT_ID": "pgconsole",
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_ROLE_MAP": ROLE_MAP,
        **extra,
    }


@pytest.fixture
def sso_app(make_app, oidc_provider):
    return make_app(**sso_settings(oidc_provider))


def start_sign_in(client) -> str:
    """Press the SSO button; returns the provider's authorization URL the console sent the browser to."""
    started = client.get("/login/oidc")
    assert started.status_code == 302, started.get_data(as_text=True)
    return started.location


def finish_sign_in(client, back_to_console: str):
    parts = urlsplit(back_to_console)
    assert parts.path == "/login/oidc/callback"
    return client.get(f"{parts.path}?{parts.query}")


def sso_sign_in(client, provider: Provider, sub: str):
    return finish_sign_in(client, provider.authorize(start_sign_in(client), sub))


def signed_in_as(client) -> str | None:
    """The "name (role)" the page header shows, or None when the console sends the browser to sign in."""
    page = client.get("/")
    if page.status_code != 200:
        return None
    import re

    match = re.search(r'class="who">([^<]+)</a>', page.get_data(as_text=True))
    return match.group(1) if match else None


def audit_rows(app, action: str) -> list:
    from app.extensions import db
    from app.store.models import AuditEvent

    with app.app_context():
        query = db.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return [(e.username, e.outcome, e.detail) for e in db.session.execute(query).scalars()]


def test_groups_map_to_the_highest_role_and_the_flow_uses_pkce_state_and_nonce(sso_app, oidc_provider):
    oidc_provider.set_user("u-1", preferred_username="alice", email="alice@example.com", groups=["developers", "dba"])
    oidc_provider.set_user("u-2", email="bob@example.com", email_verified=True, groups=["developers", "marketing"])
    alice = sso_app.test_client()
    login_page = alice.get("/login").get_data(as_text=True)
    assert "Sign in with SSO" in login_page

    authorization = start_sign_in(alice)
    query = parse_qs(urlsplit(authorization).query)
    assert authorization.startswith(oidc_provider.url + "/oauth2/authorize")
    assert query["response_type"] == ["code"] and query["client_id"] == ["pgconsole"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["state"][0] and query["nonce"][0]
    assert query["redirect_uri"] == ["http://localhost/login/oidc/callback"]
    assert query["scope"] == ["openid email profile"]
    done = finish_sign_in(alice, oidc_provider.authorize(authorization, "u-1"))
    assert done.status_code == 302 and done.location == "/"
    assert signed_in_as(alice) == "alice (admin)"  # dba and developers: the highest wins
    assert alice.get("/users").status_code == 200

    bob = sso_app.test_client()
    assert sso_sign_in(bob, oidc_provider, "u-2").status_code == 302
    assert signed_in_as(bob) == "bob@example.com (operator)"  # no preferred_username: the email
    assert bob.get("/users").status_code == 403

    rows = audit_rows(sso_app, "sso.login")
    assert ("alice", "ok", "groups seen: developers, dba; role given: admin; account created") in rows
    assert (
        "bob@example.com",
        "ok",
        "groups seen: developers, marketing; role given: operator; account created",
    ) in rows
    from app.accounts.people import find_user

    with sso_app.app_context():
        assert find_user("alice").is_sso and find_user("alice").password_hash == ""
    # An SSO user has no password here: the password form never signs them in.
    assert AuthActions(sso_app.test_client()).login("alice", "").status_code == 400
    assert AuthActions(sso_app.test_client()).login("alice", PASSWORD).status_code == 401


def test_a_user_whose_groups_map_to_nothing_is_refused_unless_star_is_mapped(make_app, oidc_provider):
    oidc_provider.set_user("u-3", preferred_username="carol", groups=["marketing"])
    oidc_provider.set_user("u-4", preferred_username="dave")  # no groups claim at all
    app = make_app(**sso_settings(oidc_provider))
    for sub in ("u-3", "u-4"):
        client = app.test_client()
        refused = sso_sign_in(client, oidc_provider, sub)
        assert refused.status_code == 403
        assert "You cannot sign in here: none of your groups is given a role in this console" in refused.get_data(
            as_text=True
        )
        assert signed_in_as(client) is None
    assert audit_rows(app, "sso.login") == [
        ("carol", "refused", "none of your groups is given a role in this console; groups seen: marketing"),
        ("dave", "refused", "none of your groups is given a role in this console; groups seen: none"),
    ]
    from app.accounts.people import find_user

    with app.app_context():
        assert find_user("carol") is None  # nobody was created

    everyone = make_app(**sso_settings(oidc_provider, OIDC_ROLE_MAP=f"{ROLE_MAP},*=viewer"))
    client = everyone.test_client()
    assert sso_sign_in(client, oidc_provider, "u-3").status_code == 302
    assert signed_in_as(client) == "carol (viewer)"


def test_the_role_follows_the_groups_at_the_next_sign_in(sso_app, oidc_provider):
    from app.accounts.people import find_user
    from app.extensions import db
    from app.store.models import ApiToken

    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    laptop = sso_app.test_client()
    sso_sign_in(laptop, oidc_provider, "u-1")
    assert signed_in_as(laptop) == "alice (admin)"

    oidc_provider.set_user("u-1", preferred_username="alice", groups=["developers"])  # left the dba group
    assert signed_in_as(laptop) == "alice (admin)"  # nothing asks the provider until the next sign-in
    phone = sso_app.test_client()
    sso_sign_in(phone, oidc_provider, "u-1")
    assert signed_in_as(phone) == "alice (operator)"
    assert signed_in_as(laptop) is None  # the session opened as admin ended with the change
    assert ("alice", "ok", "groups seen: developers; role given: operator (was admin)") in audit_rows(
        sso_app, "sso.login"
    )

    # Removed from every mapped group: refused, and the account keeps no role it was given before.
    oidc_provider.set_user("u-1", preferred_username="alice", groups=[])
    assert sso_sign_in(sso_app.test_client(), oidc_provider, "u-1").status_code == 403

    # Disabled by an admin: refused at the provider's door, and API tokens stop too.
    with sso_app.app_context():
        user = find_user("alice")
        record, plain = ApiToken.issue(user)
        db.session.add(record)
        db.session.commit()
    headers = {"Authorization": f"Bearer {plain}"}
    assert sso_app.test_client().get("/api/setting/backups", headers=headers).status_code == 200
    with sso_app.app_context():
        from app.accounts.people import set_active

        set_active(find_user("alice"), False, "test")
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    refused = sso_sign_in(sso_app.test_client(), oidc_provider, "u-1")
    assert refused.status_code == 403 and "your account is disabled in this console" in refused.get_data(as_text=True)
    assert sso_app.test_client().get("/api/setting/backups", headers=headers).status_code == 401


def test_a_single_sign_on_session_ends_after_oidc_session_hours(make_app, oidc_provider):
    from app.extensions import db
    from app.store.models import LoginSession, utcnow

    app = make_app(**sso_settings(oidc_provider, OIDC_SESSION_HOURS="2"))
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["developers"])
    client = app.test_client()
    sso_sign_in(client, oidc_provider, "u-1")
    with app.app_context():
        record = db.session.execute(db.select(LoginSession)).scalar_one()
        ends_in = record.expires_at - utcnow()
        assert timedelta(hours=1, minutes=59) < ends_in <= timedelta(hours=2)
        record.expires_at = utcnow() - timedelta(seconds=1)  # two hours later
        db.session.commit()
    page = client.get("/")
    assert page.status_code == 302 and page.location.startswith("/login")  # back to the provider, no renewal


def test_a_tampered_state_is_refused(sso_app, oidc_provider):
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    client = sso_app.test_client()
    back = urlsplit(oidc_provider.authorize(start_sign_in(client), "u-1"))
    query = parse_qs(back.query)
    query["state"] = [query["state"][0][:-2] + "xx"]
    refused = client.get(f"{back.path}?{urlencode(query, doseq=True)}")
    assert refused.status_code == 400
    assert "not one this browser started (state mismatch)" in refused.get_data(as_text=True)
    assert signed_in_as(client) is None
    # A callback this browser never asked for (e.g. a link someone sent) is refused the same way.
    stranger = sso_app.test_client()
    assert stranger.get(f"{back.path}?{back.query}").status_code == 400
    assert signed_in_as(stranger) is None
    assert [r[1] for r in audit_rows(sso_app, "sso.login")] == ["refused", "refused"]


def test_an_id_token_with_another_nonce_is_refused(sso_app, oidc_provider):
    """The provider signs a token for a nonce that is not the one this browser's sign-in sent."""
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    client = sso_app.test_client()
    authorization = urlsplit(start_sign_in(client))
    query = parse_qs(authorization.query)
    query["nonce"] = ["a-nonce-from-another-sign-in"]
    tampered = urlunsplit(authorization._replace(query=urlencode(query, doseq=True)))
    refused = finish_sign_in(client, oidc_provider.authorize(tampered, "u-1"))
    assert refused.status_code == 400
    assert "the ID token was refused" in refused.get_data(as_text=True) and "nonce" in refused.get_data(as_text=True)
    assert signed_in_as(client) is None
    (row,) = audit_rows(sso_app, "sso.login")
    assert row[1] == "refused" and "nonce" in row[2]


def test_an_expired_id_token_is_refused(make_app):
    """A provider whose tokens are already ten minutes past their expiry (beyond Authlib's two-minute leeway)."""
    with run_provider(access_token_max_age=timedelta(minutes=-10)) as late:
        late.set_user("u-1", preferred_username="alice", groups=["dba"])
        app = make_app(**sso_settings(late))
        client = app.test_client()
        refused = sso_sign_in(client, late, "u-1")
    assert refused.status_code == 400
    assert "the ID token was refused: expired_token (The token is expired)" in refused.get_data(as_text=True)
    assert signed_in_as(client) is None
    assert audit_rows(app, "sso.login") == [
        (None, "refused", "the ID token was refused: expired_token (The token is expired)")
    ]


class SwappedTokenProvider:
    """Our provider, reached through a man in the middle who answers its token requests with an ID
    token from another provider: issued by that one, signed with its keys, for the same person and
    nonce. Everything else is the real provider's (it publishes the proxy's address as its own)."""

    def __init__(self, ours: Provider, foreign: Provider):
        self.ours, self.foreign = ours, foreign
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.swapped = 0

    def __call__(self, environ, start_response):
        request = Request(environ)
        answer = requests.request(
            request.method, self.ours.url + request.full_path.rstrip("?"), data=request.get_data(),
            headers={**{k: v for k, v in request.headers.items() if k.lower() != "host"},
                     "Host": f"127.0.0.1:{self.port}"},
            allow_redirects=False, timeout=10,
        )  # fmt: skip
        body = answer.content
        if request.path == "/oauth2/token" and answer.ok:
            token = answer.json()
            token["id_token"] = self.foreign_id_token(token["id_token"])
            body = json.dumps(token).encode()
            self.swapped += 1
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() in ("content-type", "location")]
        return Response(body, answer.status_code, headers)(environ, start_response)

    def foreign_id_token(self, ours: str) -> str:
        payload = ours.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        callback = "http://localhost/login/oidc/callback"
        params = {"client_id": "pgconsole", "redirect_uri": callback, "response_type": "code",
                  "scope": "openid email profile", "nonce": claims["nonce"], "state": "s"}  # fmt: skip
        self.foreign.set_user(claims["sub"], preferred_username="alice", groups=["dba"])
        back = self.foreign.authorize(f"{self.foreign.url}/oauth2/authorize?{urlencode(params)}", claims["sub"])
        code = parse_qs(urlsplit(back).query)["code"][0]
        token = requests.post(f"{self.foreign.url}/oauth2/token", timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": callback,
            "client_id": "pgconsole", "client_secret": "x"})  # fmt: skip
        return token.json()["id_token"]

    def serve(self) -> Iterator[None]:
        server = make_server("127.0.0.1", self.port, self, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            thread.join(5)


def test_an_id_token_from_another_provider_is_refused(make_app, oidc_provider):
    import contextlib

    with run_provider() as foreign:
        middle = SwappedTokenProvider(oidc_provider, foreign)
        with contextlib.contextmanager(middle.serve)():
            oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
            app = make_app(**sso_settings(oidc_provider, OIDC_ISSUER=middle.url))
            client = app.test_client()
            authorization = start_sign_in(client)
            assert authorization.startswith(middle.url)
            refused = finish_sign_in(client, oidc_provider.authorize(authorization, "u-1"))
    assert middle.swapped == 1  # the console did get the foreign token
    # Signed with the other provider's key: our provider's published keys do not verify it.
    assert refused.status_code == 400
    assert "the ID token was refused: bad_signature" in refused.get_data(as_text=True)
    assert signed_in_as(client) is None
    assert audit_rows(app, "sso.login") == [(None, "refused", "the ID token was refused: bad_signature")]


def test_when_the_provider_is_down_the_page_says_so_and_admins_keep_the_password_form(make_app, make_user):
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = make_app(OIDC_ISSUER=issuer, OIDC_CLIENT_ID="pgconsole", OIDC_ROLE_MAP=ROLE_MAP, LOCAL_LOGIN="admins")
    client = app.test_client()
    down = client.get("/login/oidc")
    assert down.status_code == 503
    assert f"The identity provider ({issuer}) is not answering" in down.get_data(as_text=True)
    assert audit_rows(app, "sso.login") == [(None, "failed", "the provider did not answer: ConnectionError")]
    with app.app_context():
        from app.accounts.people import create_user

        create_user("ada", "admin", PASSWORD, "test")
    assert AuthActions(client).login("ada").status_code == 302  # the break-glass
    assert signed_in_as(client) == "ada (admin)"


def test_local_login_admins_lets_only_admins_use_the_password_form(make_app, oidc_provider):
    app = make_app(**sso_settings(oidc_provider, LOCAL_LOGIN="admins"))
    with app.app_context():
        from app.accounts.people import create_user

        create_user("ada", "admin", PASSWORD, "test")
        create_user("olga", "operator", PASSWORD, "test")
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "Admins: sign in with a password" in page and "Sign in with SSO" in page
    olga = app.test_client()
    refused = AuthActions(olga).login("olga")
    assert refused.status_code == 403
    assert "Only admins may sign in with a password here" in refused.get_data(as_text=True)
    assert signed_in_as(olga) is None
    ada = app.test_client()
    assert AuthActions(ada).login("ada").status_code == 302 and signed_in_as(ada) == "ada (admin)"
    assert ("olga", "refused", "sign-in with a password is for admins only (LOCAL_LOGIN=admins)") in audit_rows(
        app, "login"
    )


def test_local_login_disabled_leaves_only_single_sign_on(make_app, oidc_provider):
    from app.config import ConfigError, Settings

    app = make_app(**sso_settings(oidc_provider, LOCAL_LOGIN="disabled"))
    with app.app_context():
        from app.accounts.people import create_user

        create_user("ada", "admin", PASSWORD, "test")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in with SSO" in page and 'name="password"' not in page
    # The page has no form, so no CSRF token to post with: a console without CSRF checks (same
    # store) shows that the view itself refuses the right password.
    unchecked = make_app(**sso_settings(oidc_provider, LOCAL_LOGIN="disabled"), WTF_CSRF_ENABLED=False).test_client()
    refused = unchecked.post("/login", data={"username": "ada", "password": PASSWORD})
    assert refused.status_code == 403 and "Sign-in with a password is turned off here" in refused.get_data(as_text=True)
    assert signed_in_as(unchecked) is None
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    assert sso_sign_in(client, oidc_provider, "u-1").status_code == 302 and signed_in_as(client) == "alice (admin)"
    # Without a provider, nobody could sign in: that setting does not start.
    with pytest.raises(ConfigError, match="LOCAL_LOGIN: is disabled but OIDC_ISSUER is not set"):
        Settings.from_env({"DATABASE_URL": "postgresql://postgres@127.0.0.1/x", "LOCAL_LOGIN": "disabled"})


def test_the_last_local_admin_cannot_be_disabled_or_demoted_even_with_sso_admins(sso_app, oidc_provider):
    with sso_app.app_context():
        from app.accounts.people import create_user

        create_user("ada", "admin", PASSWORD, "test")
    oidc_provider.set_user("u-1", preferred_username="alice", groups=["dba"])
    alice = sso_app.test_client()
    sso_sign_in(alice, oidc_provider, "u-1")
    auth = AuthActions(alice)
    from app.accounts.people import find_user

    with sso_app.app_context():
        ada_id = find_user("ada").id
    alice.post(f"/users/{ada_id}/active", data={"csrf_token": auth.csrf_token("/users")})
    alice.post(f"/users/{ada_id}/role", data={"role": "viewer", "csrf_token": auth.csrf_token("/users")})
    page = alice.get("/users").get_data(as_text=True)
    assert "ada is the last active local admin (the way in when single sign-on is down)" in page
    with sso_app.app_context():
        ada = find_user("ada")
        assert ada.active and ada.role == "admin"


def test_single_sign_on_never_takes_over_a_local_account_of_the_same_name(sso_app, oidc_provider):
    with sso_app.app_context():
        from app.accounts.people import create_user

        create_user("ada", "viewer", PASSWORD, "test")
    oidc_provider.set_user("u-9", preferred_username="ada", groups=["dba"])
    client = sso_app.test_client()
    refused = sso_sign_in(client, oidc_provider, "u-9")
    assert refused.status_code == 403
    assert "the username &#39;ada&#39; belongs to a local account of this console" in refused.get_data(as_text=True)
    assert signed_in_as(client) is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OIDC_ISSUER": "https://id.example.com"}, "OIDC_CLIENT_ID"),
        ({"OIDC_ISSUER": "https://id.example.com", "OIDC_CLIENT_ID": "c"}, "OIDC_ROLE_MAP"),
        (
            {"OIDC_ISSUER": "https://id.example.com", "OIDC_CLIENT_ID": "c", "OIDC_ROLE_MAP": "dba=root"},
            "OIDC_ROLE_MAP",
        ),
        ({"OIDC_ISSUER": "id.example.com", "OIDC_CLIENT_ID": "c", "OIDC_ROLE_MAP": "dba=admin"}, "OIDC_ISSUER"),
        ({"LOCAL_LOGIN": "sometimes"}, "LOCAL_LOGIN"),
        ({"REQUIRE_2FA": "everyone"}, "REQUIRE_2FA"),
    ],
)
def test_sign_in_settings_are_checked_at_start(env, variable):
    from app.config import ConfigError, Settings

    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"DATABASE_URL": "postgresql://postgres@127.0.0.1/x", **env})
    assert raised.value.variable == variable
