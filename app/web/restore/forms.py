from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError


class RestoreForm(FlaskForm):
    passkey = PasswordField("Passkey", validators=[DataRequired(), Length(max=256)])
    confirm = StringField("Type the database name to confirm", validators=[DataRequired(), Length(max=128)])
    submit = SubmitField("Restore database")

    def __init__(self, dbname: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dbname = dbname
        self.confirm.label.text = f"Type {dbname} to confirm"

    def validate_confirm(self, field) -> None:
        if field.data != self.dbname:
            raise ValidationError(f"Type the database name exactly: {self.dbname}")
