"""The sign-in attempt limits, as the sign-in pages apply them (see app/web/identity.py)."""

from app.web.identity import ADDRESS_FAILURES_ALLOWED, CODE_FAILURES_ALLOWED, USERNAME_FREE_FAILURES

__all__ = ["ADDRESS_FAILURES_ALLOWED", "CODE_FAILURES_ALLOWED", "USERNAME_FREE_FAILURES"]
