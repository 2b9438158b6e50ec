"""Proving who you are inside a session, and the sign-in attempt limits it shares with the sign-in form.

Before a sensitive step (a new API token, a new password) the signed-in user types their password or
a fresh code again; wrong answers count as failed sign-ins, so a stolen session cannot guess with it.
"""

from __future__ import annotations

from app import services
from app.accounts import second_factor
from app.adapters.ratelimit import FailureLimit
from app.store import audit
from app.store.models import User
from app.web.access import client_address, failure_limit, proven_now

ADDRESS_FAILURES_ALLOWED = 20
LOGIN_WINDOW_SECONDS = 15 * 60
USERNAME_FREE_FAILURES = 5  # typos cost nothing
SLOWDOWN_MAX_SECONDS = 3.0
# Wrong two-factor codes count as wrong passwords (above), and per account they also lock: only
# someone who knows the password can get there, so this lock is no way to shut a stranger out.
CODE_FAILURES_ALLOWED = 10


def code_limit() -> FailureLimit:
    return failure_limit("login-code", CODE_FAILURES_ALLOWED, LOGIN_WINDOW_SECONDS)


def address_limit() -> FailureLimit:
    return failure_limit("login-address", ADDRESS_FAILURES_ALLOWED, LOGIN_WINDOW_SECONDS)


def take_attempt(user: User, address: str) -> int:
    """Count a code (or re-entered password) of `user` as failed before checking it, per address and per
    account; 0 when it may be checked, else the seconds to wait (and nothing counted)."""
    per_address, per_account = address_limit(), code_limit()
    wait = per_address.take(address)
    if not wait:
        wait = per_account.take(str(user.id))
        if wait:
            per_address.give_back(address)
    return wait


def give_back_attempt(user: User, address: str) -> None:
    """The attempt was right: it does not count against the address, and the account starts afresh."""
    address_limit().give_back(address)
    code_limit().reset(str(user.id))


def prove_identity(user: User, typed: str, action: str, password_only: bool = False) -> str | None:
    """Inside a session, before a sensitive step (`action`: making a token, a new password): None when
    `typed` is the user's password or (unless `password_only`) a fresh code from their app, else why not,
    audited. Wrong answers count as failed sign-ins, so a stolen session cannot use this to guess."""
    address = client_address()
    wait = take_attempt(user, address)
    settings = services.settings()
    if wait:
        problem = f"Too many failed attempts. Try again in {-(-wait // 60)} minute(s)."
    elif user.check_password(typed) or (not password_only and user.has_second_factor
                                        and second_factor.check_totp(user, typed, settings)):  # fmt: skip
        give_back_attempt(user, address)
        proven_now()
        return None
    else:
        problem = "That is not your current password." if password_only else (
            "That is neither your password nor a current code from your app.")  # fmt: skip
    audit.record(action, "refused", username=user.username, target=user.username, detail=problem, address=address)
    return problem
