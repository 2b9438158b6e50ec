"""What a single sign-on means for the console: which user, which role, or why not.

The protocol itself (authorization code flow with PKCE, state, nonce, the ID token's signature,
issuer, audience and expiry) is Authlib's, in app/web/auth/sso.py; this module gets the verified
claims. A user is found by the provider's issuer and `sub` (never by a name a provider could
reuse), created on first sign-in without a local password, and given the role that the groups
map to *now*: someone removed from a group loses its role at their next sign-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app import audit
from app.extensions import db
from app.models import User
from app.people import end_sessions, find_user
from app.settings import OidcSettings


class SignInRefused(Exception):
    """str() is the reason, shown to the person and written to the audit log."""


def username_from(claims: Mapping[str, Any], oidc: OidcSettings) -> str | None:
    """OIDC_USERNAME_CLAIM, falling back to `email`."""
    for name in (oidc.username_claim, "email"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:64]
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
        role = oidc.role_for(groups)
        if role is None:
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


def _user_for(subject: str, username: str, oidc: OidcSettings) -> User:
    """The existing single sign-on user, renamed if the provider renamed them, or a new one."""
    user = db.session.execute(
        db.select(User).where(User.sso_issuer == oidc.issuer, User.sso_subject == subject)
    ).scalar_one_or_none()
    holder = find_user(username)
    if holder is not None and holder is not user:
        # Never take over a local account (or another provider user) that has the same name.
        kind = "a single sign-on account" if holder.is_sso else "a local account"
        raise SignInRefused(f"the username {username!r} belongs to {kind} of this console; ask an admin")
    if user is None:
        return User(
            username=username, password_hash="", role="viewer", active=True, sso_issuer=oidc.issuer, sso_subject=subject
        )
    user.username = username
    return user
