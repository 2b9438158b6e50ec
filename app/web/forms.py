"""The forms every blueprint shares, and what every state-changing view does first: check the posted
form (CSRF included) or stop."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort
from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField


class ActionForm(FlaskForm):
    """A button that posts (verify, unpin, disable, revoke, check storage…): CSRF is all it carries.

    Templates give the button its words: `form.submit(value="Check storage")`.
    """

    submit = SubmitField("Go")


class CreateBackupForm(FlaskForm):
    next = HiddenField()  # where the job page leads once the backup is done (a safety backup)
    submit = SubmitField("Create backup")


def require_submitted(form: FlaskForm) -> FlaskForm:
    """The form, validated; else 400 with its field errors, or "expired" when only CSRF failed."""
    if not form.validate_on_submit():
        problems = [e for name, errors in form.errors.items() if name != "csrf_token" for e in errors]
        abort(400, "; ".join(problems) or "the form expired; reload the page and try again")
    return form


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return None
    return target
