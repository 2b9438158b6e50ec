from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError


class RestoreForm(FlaskForm):
    passkey = PasswordField("Passkey", validators=[DataRequired(), Length(max=256)])
    confirm = StringField("Type the database name to confirm", validators=[DataRequired(), Length(max=128)])
    without_owners = BooleanField("Restore without owners and grants (every object owned by the console's role)")
    create_roles = BooleanField("Create the missing roles from the backup, then restore with owners and grants")
    swap_back = BooleanField("Swap back: put back the database kept with this backup, instead of restoring the file")
    submit = SubmitField("Restore database")

    def __init__(self, expected: str, *args, **kwargs):
        """`expected` is what the admin types: the database's name, or `<environment>/<database>` when
        the backup comes from another environment (so that both are read before restoring)."""
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.confirm.label.text = f"Type {expected} to confirm"

    @property
    def typed(self) -> str:
        """What must be typed: the name, and the choice made (drop owners and grants, create roles, swap back)."""
        if self.without_owners.data:
            return f"{self.expected} without owners"
        if self.swap_back.data:
            return f"{self.expected} swapping back"
        return f"{self.expected} creating roles" if self.create_roles.data else self.expected

    def validate_create_roles(self, field) -> None:
        if field.data and self.without_owners.data:
            raise ValidationError("Choose one: create the missing roles, or restore without owners and grants")

    def validate_swap_back(self, field) -> None:
        if field.data and (self.without_owners.data or self.create_roles.data):
            raise ValidationError("A swap back puts the kept database back as it is: untick the other choices")

    def validate_confirm(self, field) -> None:
        if field.data != self.typed:
            what = "the environment and database" if "/" in self.expected else "the database name"
            if self.without_owners.data:
                what += ", then \"without owners\""
            elif self.swap_back.data:
                what += ", then \"swapping back\""
            elif self.create_roles.data:
                what += ", then \"creating roles\""
            raise ValidationError(f"Type {what} exactly: {self.typed}")
