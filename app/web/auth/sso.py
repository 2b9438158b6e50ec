"""Single sign-on through the OpenID Connect provider at OIDC_ISSUER, with Authlib.

Authlib runs the authorization code flow with PKCE (S256), keeps `state`, `nonce` and the code
verifier in this browser's signed session until the callback, and verifies the ID token against
the provider's published keys, issuer, audience (our client id), expiry and the nonce. What the
verified claims mean for the console is app/accounts/single_sign_on.py.
"""

from __future__ import annotations

# Authlib, joserfc and requests are imported where they are used: they weigh about 20 MB, and
# the worker (which loads this blueprint with the app) never signs anyone in.
from datetime import timedelta

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for

from app import services
from app.accounts.single_sign_on import SignInRefused, sign_in
from app.config import OidcSettings
from app.extensions import db
from app.store import audit
from app.store.models import utcnow
from app.web.access import client_address, start_session
from app.web.forms import safe_next

bp = Blueprint("sso", __name__)
NEXT_KEY = "sso_next"
_CLIENT = "pgconsole.oidc"
PROVIDER_TIMEOUT_SECONDS = 10


def init_app(app: Flask, oidc: OidcSettings | None) -> None:
    """One Authlib client per app (tests build several apps, each with its own provider)."""
    if oidc is None:
        return
    from authlib.integrations.flask_client import OAuth

    client_kwargs = {"scope": oidc.scopes, "code_challenge_method": "S256", "default_timeout": PROVIDER_TIMEOUT_SECONDS}
    if oidc.client_secret is None:
        client_kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105 - a public client: PKCE alone
    oauth = OAuth(app)
    app.extensions[_CLIENT] = oauth.register(
        "sso",
        client_id=oidc.client_id,
        client_secret=oidc.client_secret,
        server_metadata_url=f"{oidc.issuer}/.well-known/openid-configuration",
        client_kwargs=client_kwargs,
    )


def _provider():
    client = current_app.extensions.get(_CLIENT)
    if client is None:
        abort(404, "single sign-on is not set up on this console")
    return client


def _refused(reason: str, status: int):
    return render_template("auth/sso_refused.html", reason=reason), status


def _provider_down(exc: Exception):
    issuer = services.settings().oidc.issuer
    audit.record("sso.login", "failed", detail=f"the provider did not answer: {type(exc).__name__}",
                 address=client_address())  # fmt: skip
    return _refused(f"The identity provider ({issuer}) is not answering. Try again in a few minutes; "
                    "an admin can still sign in with a password if this console allows it.", 503)  # fmt: skip


@bp.route("/login/oidc")
def start():
    """Off to the provider; its answer comes back to /login/oidc/callback."""
    import requests

    client = _provider()
    next_page = safe_next(request.args.get("next"))
    try:
        metadata = client.load_server_metadata()
        if metadata.get("issuer", "").rstrip("/") != services.settings().oidc.issuer:
            # OpenID Connect Discovery: the document must name the issuer it was fetched for.
            named = metadata.get("issuer")
            audit.record("sso.login", "refused", detail=f"the discovery document names issuer {named!r}",
                         address=client_address())  # fmt: skip
            return _refused("The identity provider's configuration names another issuer; ask an admin.", 502)
        response = client.authorize_redirect(url_for("sso.callback", _external=True))
    except requests.RequestException as exc:
        return _provider_down(exc)
    session[NEXT_KEY] = next_page or ""
    return response


@bp.route("/login/oidc/callback")
def callback():
    import requests
    from authlib.integrations.base_client import OAuthError
    from joserfc.errors import JoseError

    client = _provider()
    oidc = services.settings().oidc
    address = client_address()
    next_page = session.pop(NEXT_KEY, "")
    try:
        token = client.authorize_access_token()
    except requests.RequestException as exc:
        return _provider_down(exc)
    except (OAuthError, JoseError, ValueError) as exc:
        # A state that is not this browser's, a nonce or ID token that does not verify, an expired
        # token, an error from the provider (e.g. the person denied access).
        reason = _why(exc)
        audit.record("sso.login", "refused", detail=reason, address=address)
        return _refused(f"Single sign-on did not complete: {reason}.", 400)
    claims = token.get("userinfo")
    if not claims:
        audit.record("sso.login", "refused", detail="the provider sent no ID token", address=address)
        return _refused("Single sign-on did not complete: the provider sent no ID token.", 400)
    try:
        user = sign_in(dict(claims), oidc, address)
    except SignInRefused as exc:
        return _refused(f"You cannot sign in here: {exc}.", 403)
    start_session(user, expires_at=utcnow() + timedelta(hours=oidc.session_hours))
    user.last_login_at = utcnow()
    db.session.commit()
    return redirect(safe_next(next_page) or url_for("backups.index"))


# What the provider's `error` codes (RFC 6749 4.1.2.1, OpenID Connect Core 3.1.2.6) mean, in our words.
# The callback's `error` and `error_description` come from the address bar, so anyone can send a link
# that fills them: they are never shown, only mapped to fixed text.
PROVIDER_ERRORS = {
    "access_denied": "the sign-in was denied at the identity provider",
    "login_required": "the identity provider needs you to sign in there first",
    "interaction_required": "the identity provider needs you to sign in there first",
    "consent_required": "the identity provider needs your consent first",
    "account_selection_required": "the identity provider needs you to choose an account",
    "temporarily_unavailable": "the identity provider is busy; try again in a few minutes",
    "server_error": "the identity provider had an error",
    "invalid_scope": "the identity provider refused the requested scopes (an admin must check OIDC_SCOPES)",
    "unauthorized_client": "the identity provider does not let this console sign people in (check its client)",
    "invalid_client": "the identity provider does not know this console's client (check OIDC_CLIENT_ID)",
    "invalid_grant": "the sign-in code was refused (expired or already used); start again",
}


def _why(exc: Exception) -> str:
    """One line for the person and the audit log; never the token, and never text the request chose."""
    from authlib.integrations.base_client import OAuthError

    if isinstance(exc, OAuthError):
        if exc.error == "mismatching_state":
            return "the sign-in request is not one this browser started (state mismatch); start again"
        return PROVIDER_ERRORS.get(str(exc.error), "the identity provider refused the sign-in")
    name = getattr(exc, "error", None) or type(exc).__name__
    description = getattr(exc, "description", None) or ""
    return f"the ID token was refused: {name}" + (f" ({description})" if description else "")
