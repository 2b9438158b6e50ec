from flask_wtf import FlaskForm
from wtforms import SubmitField


class CreateBackupForm(FlaskForm):
    submit = SubmitField("Create backup")
