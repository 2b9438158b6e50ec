from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import Length


class PinForm(FlaskForm):
    note = StringField("Note", validators=[Length(max=200)])
    submit = SubmitField("Pin")
