"""What a single sign-on means for the console: which user, which role, or why not.

The protocol itself (authorization code flow with PKCE, state, nonce, the ID token's signature,
issuer, audience and expiry) is Authlib's, in app/web/auth/sso.py; this module gets the verified
claims. A user is found by the provider's issuer and `sub` (never by a name a provider could
reuse), created on first sign-in without a local password, and given the role that the groups
map to *now*: someone removed from a group loses its role at their next sign-in (and someone left
with no mapped group loses their sessions and API tokens).

A username from the provider must be plain ASCII (letters, digits, `._@+-`) and must not equal any
other account's name once case and Unicode compatibility forms are ignored: `RTADMIN`, or `rtаdmin`
with a Cyrillic `а`, is never taken for the local `rtadmin`. `email` stands in for the username only
when the provider says it has verified it (`email_verified`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from app.accounts.people import end_sessions, lookalike_of, revoke_tokens
from app.config import OidcSettings
from app.extensions import db
from app.store import audit
from app.store.models import User

_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")


class SignInRefused(Exception):
    """str() is the reason, shown to the person and written to the audit log."""


def username_from(claims: Mapping[str, Any], oidc: OidcSettings) -> str | None:
    """OIDC_USERNAME_CLAIM, falling back to `email`; an email only when the provider verified it."""
    for name in (oidc.username_claim, "email"):
        if name == "email" and claims.get("email_verified") not in (True, "true"):
            continue  # an address nobody checked could be anyone's, a local admin's included
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return unicodedata.normalize("NFKC", value.strip())[:64]
    return None


def groups_from(claims: Mapping[str, Any], oidc: OidcSettings) -> list[str]:
    """OIDC_ROLES_CLAIM as a list (providers send a list, or one string)."""
    value = claims.get(oidc.roles_claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(group) for group in value]
    return []


def sign_in(claims: Mapping[str, Any], oidc: OidcSettings, address: str | None) -> User:
    """The user these verified ID-token claims stand for, created or updated; SignInRefused otherwise.

    Every outcome is audited with the groups seen and the role given (or the reason for refusing).
    """
    subject = str(claims.get("sub") or "")
    username = username_from(claims, oidc)
    groups = groups_from(claims, oidc)
    seen = f"groups seen: {', '.join(groups) or 'none'}"
    try:
        if not subject or not username:
            raise SignInRefused(f"the provider sent no sub or no {oidc.username_claim} / email claim")
        if not _USERNAME.fullmatch(username):
            raise SignInRefused(f"the username {username!r} has characters this console does not accept "
                                "in a single sign-on name (only a-z, A-Z, 0-9 and . _ @ + -)")  # fmt: skip
        role = oidc.role_for(groups)
        if role is None:
            _withdraw(subject, oidc)
            raise SignInRefused("none of your groups is given a role in this console")
        user = _user_for(subject, username, oidc)
        if not user.active:
            raise SignInRefused("your account is disabled in this console; ask an admin")
    except SignInRefused as exc:
        audit.record("sso.login", "refused", username=username, detail=f"{exc}; {seen}", address=address)
        raise
    created = user.id is None
    old_role, user.role = user.role, role
    if not created and old_role != role:
        end_sessions(user)  # sessions opened with the old role end now
    db.session.add(user)
    db.session.commit()
    change = "; account created" if created else (f" (was {old_role})" if old_role != role else "")
    audit.record("sso.login", "ok", username=user.username, target=user.username,
                 detail=f"{seen}; role given: {role}{change}", address=address)  # fmt: skip
    return user


def _known(subject: str, oidc: OidcSettings) -> User | None:
    return db.session.execute(
        db.select(User).where(User.sso_issuer == oidc.issuer, User.sso_subject == subject)
    ).scalar_one_or_none()


def _withdraw(subject: str, oidc: OidcSettings) -> None:
    """The provider gives this person no role any more: what they opened with an old one ends now."""
    user = _known(subject, oidc)
    if user is not None:
        end_sessions(user)
        revoke_tokens(user)
        db.session.commit()


def _user_for(subject: str, username: str, oidc: OidcSettings) -> User:
    """The existing single sign-on user, renamed if the provider renamed them, or a new one."""
    user = _known(subject, oidc)
    holder = lookalike_of(username, besides=user)
    if holder is not None:
        # Never take over, or pass for, a local account (or another provider user) with a name like it.
        kind = "a single sign-on account" if holder.is_sso else "a local account"
        owns = "belongs to" if holder.username == username else f"looks like {holder.username!r}, the name of"
        raise SignInRefused(f"the username {username!r} {owns} {kind} of this console; ask an admin")
    if user is None:
        return User(
            username=username, password_hash="", role="viewer", active=True, sso_issuer=oidc.issuer, sso_subject=subject
        )
    user.username = username
    return user
