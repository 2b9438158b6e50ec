"""What every state-changing view does first: check the posted form (CSRF included) or stop."""

from __future__ import annotations

from flask import abort
from flask_wtf import FlaskForm


def require_submitted(form: FlaskForm) -> FlaskForm:
    """The form, validated; else 400 with its field errors, or "expired" when only CSRF failed."""
    if not form.validate_on_submit():
        problems = [e for name, errors in form.errors.items() if name != "csrf_token" for e in errors]
        abort(400, "; ".join(problems) or "the form expired; reload the page and try again")
    return form
