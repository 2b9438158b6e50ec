from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError


class RestoreForm(FlaskForm):
    passkey = PasswordField("Passkey", validators=[DataRequired(), Length(max=256)])
    confirm = StringField("Type the database name to confirm", validators=[DataRequired(), Length(max=128)])
    submit = SubmitField("Restore database")

    def __init__(self, expected: str, *args, **kwargs):
        """`expected` is what the admin types: the database's name, or `<environment>/<database>` when
        the backup comes from another environment (so that both are read before restoring)."""
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.confirm.label.text = f"Type {expected} to confirm"

    def validate_confirm(self, field) -> None:
        if field.data != self.expected:
            what = "the environment and database" if "/" in self.expected else "the database name"
            raise ValidationError(f"Type {what} exactly: {self.expected}")
