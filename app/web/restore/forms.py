from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, SelectField, SelectMultipleField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, ValidationError

from app.domain.partial_restore import INTO_LIVE_REFUSED, selection_problem
from app.domain.restore import new_database_name_problem

REPLACE, NEW = "replace", "new"


class RestoreForm(FlaskForm):
    passkey = PasswordField("Passkey", validators=[Length(max=256)])
    where = RadioField("Restore", default=REPLACE, choices=[
        SelectChoice(REPLACE, "Replace the live database"),
        SelectChoice(NEW, "Into a new database: replaces nothing"),
    ])  # fmt: skip
    new_database = StringField("Name of the new database", validators=[Length(max=128)])
    into_target = SelectField("On the server of the target", choices=[], validate_choice=False)
    # Checked against the archive's own list by the job; the page offers the signed manifest's.
    tables = SelectMultipleField("Only these tables", choices=[], validate_choice=False)
    confirm = StringField("Type the database name to confirm", validators=[Length(max=128)])
    without_owners = BooleanField("Restore without owners and grants (every object owned by the console's role)")
    create_roles = BooleanField("Create the missing roles from the backup, then restore with owners and grants")
    swap_back = BooleanField("Swap back: put back the database kept with this backup, instead of restoring the file")
    submit = SubmitField("Restore database")

    def __init__(self, expected: str, *args, targets: list[tuple[str, str]] | None = None,
                 passkey_on: frozenset[str] = frozenset(), here: str = "", **kwargs):  # fmt: skip
        """`expected` is what the admin types: the database's name, or `<environment>/<database>` when
        the backup comes from another environment (so that both are read before restoring).

        `targets`: (name, label) of the targets whose server a new database may go to (this one first);
        `passkey_on`: those with a restore passkey; `here`: this target's name."""
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.into_target.choices = [SelectChoice(name, label) for name, label in targets or []]
        self.passkey_on, self.here = passkey_on, here
        self.label_confirm()

    def label_confirm(self) -> None:
        """The confirmation's label: what to type (for a new database, its name as `new:<name>`)."""
        shown = f"new:{self.new_database.data or '<name>'}" if self.into_new else self.expected
        self.confirm.label.text = f"Type {shown} to confirm"

    @property
    def into_new(self) -> bool:
        return self.where.data == NEW

    @property
    def destination(self) -> str:
        """The target whose server a new database goes to."""
        return self.into_target.data or self.here

    @property
    def typed(self) -> str:
        """What must be typed: the name (`new:<name>` for a new database), and the choice made (drop owners
        and grants, create roles, swap back)."""
        name = f"new:{self.new_database.data or ''}" if self.into_new else self.expected
        if self.without_owners.data:
            return f"{name} without owners"
        if self.swap_back.data and not self.into_new:
            return f"{name} swapping back"
        return f"{name} creating roles" if self.create_roles.data else name

    def validate_passkey(self, field) -> None:
        # A new database replaces nothing: its target's passkey is asked only where that target has one.
        if not field.data and (not self.into_new or self.destination in self.passkey_on):
            raise ValidationError("Enter the restore passkey")

    def validate_new_database(self, field) -> None:
        if self.into_new and (problem := new_database_name_problem(field.data or "")):
            raise ValidationError(problem)

    def validate_into_target(self, field) -> None:
        if self.into_new and field.data and field.data not in {choice.value for choice in field.choices}:
            raise ValidationError("Choose a target you may restore into")

    def validate_tables(self, field) -> None:
        if field.data and not self.into_new:
            raise ValidationError(INTO_LIVE_REFUSED)
        if field.data and (problem := selection_problem(field.data)):
            raise ValidationError(problem[0].upper() + problem[1:])

    def validate_create_roles(self, field) -> None:
        if field.data and self.without_owners.data:
            raise ValidationError("Choose one: create the missing roles, or restore without owners and grants")

    def validate_swap_back(self, field) -> None:
        if field.data and (self.without_owners.data or self.create_roles.data):
            raise ValidationError("A swap back puts the kept database back as it is: untick the other choices")
        if field.data and self.into_new:
            raise ValidationError("A swap back replaces the live database: it cannot go into a new database")

    def validate_confirm(self, field) -> None:
        if field.data != self.typed:
            if self.into_new:
                what = "new: and the new database's name"
            else:
                what = "the environment and database" if "/" in self.expected else "the database name"
            if self.without_owners.data:
                what += ', then "without owners"'
            elif self.swap_back.data and not self.into_new:
                what += ', then "swapping back"'
            elif self.create_roles.data:
                what += ', then "creating roles"'
            raise ValidationError(f"Type {what} exactly: {self.typed}")
