from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from app.accounts.people import GLOBAL, password_problem, username_problem
from app.config import ROLES, TARGET_ROLES

ROLE_CHOICES = list(ROLES)
MAX_TOKEN_DAYS = 3650
# What each role may do, in one line each: shown on the users page beside the role pickers.
ROLE_DUTIES = {
    "viewer": "Sees backups, jobs and the activity log; changes nothing.",
    "operator": "Also makes, verifies, pins and downloads backups, and stops backups and verifies.",
    "admin": "Also restores databases, reads the audit log, manages users and changes settings.",
}


def strong_password(form, field) -> None:
    if field.data:
        problem = password_problem(field.data)
        if problem:
            raise ValidationError(problem[0].upper() + problem[1:] + ".")


class AddUserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="viewer")
    password = PasswordField(
        "Initial password (leave empty to get a one-time set-password link)",
        validators=[Optional(strip_whitespace=False), strong_password],
    )
    submit = SubmitField("Add user")

    def validate_username(self, field) -> None:
        field.data = (field.data or "").strip()
        problem = username_problem(field.data)
        if problem:
            raise ValidationError(problem[0].upper() + problem[1:] + ".")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
    submit = SubmitField("Change role")


class TargetRoleForm(FlaskForm):
    target = SelectField("Target")
    role = SelectField("Role there", choices=[GLOBAL, *TARGET_ROLES])
    submit = SubmitField("Set role on target")

    def __init__(self, targets: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.target.choices = targets


class NewPasswordForm(FlaskForm):
    new = PasswordField("New password", validators=[DataRequired(), strong_password])
    repeat = PasswordField(
        "Repeat the new password", validators=[DataRequired(), EqualTo("new", "The passwords differ.")]
    )
    submit = SubmitField("Set password")


class SetPasswordForm(NewPasswordForm):
    # The one-time secret travels in the link's #fragment (never sent to the server, so never in an
    # access log); set_password.js copies it here, or the person pastes it when scripts are off.
    secret = StringField("Set-password code (the part of the link after #)",
                         validators=[DataRequired(), Length(max=100)])  # fmt: skip


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    submit = SubmitField("Change password")


class TokenForm(FlaskForm):
    name = StringField("What the token is for", validators=[DataRequired(), Length(max=80)])
    role = SelectField("Role")
    # Asked unless this browser gave the password in the last few minutes: a stolen session cookie
    # alone must not make a token that outlives the session.
    proof = PasswordField("Your password (or a code from your authenticator app)",
                          validators=[Optional(strip_whitespace=False), Length(max=256)])  # fmt: skip
    # 90 days unless the owner clears it: a forgotten token should not work for ever. Text, not type=number:
    # a browser sends an empty value for "abc" in a number field, which would read as "never".
    expires_days = StringField("Expires after (days, empty for never)", default="90",
                               validators=[Length(max=12)], render_kw={"inputmode": "numeric"})  # fmt: skip
    submit = SubmitField("Create token")

    def validate_expires_days(self, field) -> None:
        text = (field.data or "").strip()
        if text and not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_TOKEN_DAYS):
            raise ValidationError(f"Give a whole number of days from 1 to {MAX_TOKEN_DAYS:,}, or leave it empty "
                                  "for a token that never expires.")  # fmt: skip

    @property
    def days(self) -> int | None:
        """The validated expiry in days; None: never."""
        text = (self.expires_days.data or "").strip()
        return int(text) if text else None

    def __init__(self, up_to: str, *args, **kwargs):
        """`up_to`: the highest role the asker acts as now (a session's, or a token's cap)."""
        super().__init__(*args, **kwargs)
        self.role.choices = list(ROLES[: ROLES.index(up_to) + 1])
        if not self.role.data:
            self.role.data = ROLES[0]  # the least a token can do, unless its owner asks for more


class CodeConfirmForm(FlaskForm):
    code = StringField("Code from the app", validators=[DataRequired(), Length(max=12)])
    submit = SubmitField("Turn on two-factor codes")
