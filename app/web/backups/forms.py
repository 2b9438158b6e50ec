from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField


class CreateBackupForm(FlaskForm):
    next = HiddenField()  # where the job page leads once the backup is done (a safety backup)
    submit = SubmitField("Create backup")
