"""Two-factor codes for local accounts: TOTP (pyotp), its QR code (segno), recovery codes, resets.

The TOTP secret is kept encrypted (cryptography's Fernet) with a key derived from SECRET_KEY, so
a copy of the console store alone does not give anyone the codes; it never goes to a log, Redis
or the audit log. Recovery codes are 80 random bits each and kept as sha256 digests (like API
tokens, they are too random to need salting or stretching). Single sign-on accounts have no
second factor here: their provider asks for its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import unicodedata
from typing import TYPE_CHECKING

import pyotp
import segno
from sqlalchemy import or_, update

from app.accounts.people import end_sessions
from app.config import Settings
from app.extensions import db
from app.store import audit
from app.store.models import RecoveryCode, User, utcnow

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def required_for(user: User, settings: Settings) -> bool:
    """REQUIRE_2FA: whether this (local) account must have two-factor codes."""
    if user.is_sso or settings.require_2fa == "none":
        return False
    # An admin of one target can restore it and manage its people's work: an admin all the same.
    return settings.require_2fa == "all" or "admin" in (user.role, *(r.role for r in user.target_roles))


def must_enrol(user: User, settings: Settings) -> bool:
    return required_for(user, settings) and not user.has_second_factor


def _fernet(settings: Settings) -> Fernet:
    from cryptography.fernet import Fernet  # here: 7 MB that the worker never needs

    return Fernet(base64.urlsafe_b64encode(settings.second_factor_key))


def _secret(user: User, settings: Settings) -> str | None:
    """The user's TOTP secret in clear, or None (none yet, or SECRET_KEY changed since enrolment)."""
    if not user.totp_secret:
        return None
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(settings).decrypt(user.totp_secret.encode()).decode()
    except InvalidToken:
        return None


def enrolment_secret(user: User, settings: Settings) -> str:
    """The secret being enrolled: the same one until it is confirmed, so reloading keeps a scanned QR code valid."""
    if user.has_second_factor:
        raise ValueError("already enrolled")
    secret = _secret(user, settings)
    if secret is None:
        secret = pyotp.random_base32()
        user.totp_secret = _fernet(settings).encrypt(secret.encode()).decode()
        db.session.commit()
    return secret


def qr_code_data_uri(user: User, secret: str, settings: Settings) -> str:
    """The otpauth:// URI as an SVG QR code, drawn here (no external service), for an <img src>."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=f"pgconsole {settings.app_env}")
    return segno.make(uri, error="m").svg_data_uri(scale=4)


def _matching_step(secret: str, code: str, last_step: int | None) -> int | None:
    """The time step `code` belongs to (one step of clock drift either way), unless it was used already."""
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None  # compare_digest refuses non-ASCII text; no TOTP code is anything but 6 digits
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // totp.interval
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (last_step is None or step > last_step):
            return step
    return None


def confirm_enrolment(user: User, code: str, settings: Settings, address: str | None) -> list[str] | None:
    """Turn two-factor codes on when `code` matches the secret being enrolled; returns the recovery codes (once)."""
    secret = _secret(user, settings)
    step = _matching_step(secret, _digits(code), None) if secret else None
    if step is None:
        audit.record("2fa.enrol", "failed", username=user.username, target=user.username,
                     detail="the code did not match", address=address)  # fmt: skip
        return None
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    codes = _new_recovery_codes(user)
    db.session.commit()
    audit.record("2fa.enrol", "ok", username=user.username, target=user.username,
                 detail=f"{RECOVERY_CODES} recovery codes issued", address=address)  # fmt: skip
    return codes


def _digits(code: str) -> str:
    """The code without spaces, any Unicode decimal digit as its ASCII one (some phone keyboards type
    Arabic-Indic or other digits)."""
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in code if not c.isspace())


def _normal_recovery_code(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def _recovery_digest(code: str) -> str:
    return hashlib.sha256(_normal_recovery_code(code).encode()).hexdigest()


def _new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes (the caller commits); the plain codes are returned once."""
    user.recovery_codes.clear()
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
        user.recovery_codes.append(RecoveryCode(code_hash=_recovery_digest(raw)))
    return codes


def check_code(user: User, code: str, settings: Settings, address: str | None) -> str | None:
    """At sign-in: "two-factor code" for a fresh TOTP code, "recovery code" for an unused recovery code, else None.

    Each is accepted once, even when the same code arrives in parallel requests: see `_claim_step`
    and `_spend`.
    """
    if check_totp(user, code, settings):
        return "two-factor code"
    digest = _recovery_digest(code)
    unused = [r for r in user.recovery_codes if r.used_at is None]
    match = next((r for r in unused if hmac.compare_digest(r.code_hash, digest)), None)
    if match is None or not _spend(match):
        return None
    audit.record("2fa.recovery-code", "ok", username=user.username, target=user.username,
                 detail=f"{len(unused) - 1} recovery code(s) left", address=address)  # fmt: skip
    return "recovery code"


def check_totp(user: User, code: str, settings: Settings) -> bool:
    """A fresh code from the authenticator app (not a recovery code), accepted once."""
    secret = _secret(user, settings)
    step = _matching_step(secret, _digits(code), user.totp_last_step) if secret else None
    return step is not None and _claim_step(user, step)


def _claim_step(user: User, step: int) -> bool:
    """Record `step` as used, unless this or a later one was already: one UPDATE whose WHERE holds the
    old value, so of parallel requests with one code exactly one changes the row (a read, then a
    write, let 4 to 7 of 8 parallel posts sign in)."""
    claimed = db.session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(user)
    return claimed.rowcount == 1


def _spend(code: RecoveryCode) -> bool:
    """Mark a recovery code used unless a parallel request already did (same single UPDATE as above)."""
    spent = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.id == code.id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(code)
    return spent.rowcount == 1


def recovery_codes_left(user: User) -> int:
    return sum(1 for r in user.recovery_codes if r.used_at is None)


def reset(user: User, reset_by: str, address: str | None) -> None:
    """An admin's reset (a lost phone): codes off, recovery codes gone, sessions ended; the user enrols again."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    user.recovery_codes.clear()
    end_sessions(user)
    db.session.commit()
    audit.record("2fa.reset", "ok", username=reset_by, target=user.username,
                 detail="two-factor codes and recovery codes removed; the user must enrol again",
                 address=address)  # fmt: skip
