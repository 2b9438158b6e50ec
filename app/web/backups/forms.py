from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField
from wtforms.validators import Length


class CreateBackupForm(FlaskForm):
    next = HiddenField()  # where the job page leads once the backup is done (a safety backup)
    submit = SubmitField("Create backup")


class PinForm(FlaskForm):
    note = StringField("Note", validators=[Length(max=200)])
    submit = SubmitField("Pin")
