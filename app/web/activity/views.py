"""/activity, for every role: every backup, restore and verify of the targets the caller may see, from job records."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional

from app import services
from app.jobs import history
from app.jobs.queue import JOB_KINDS, settle_history
from app.web.access import role_required
from app.web.job_access import seen

bp = Blueprint("activity", __name__)


class ActivityFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    kind = SelectField("Kind", choices=[SelectChoice("", "any"), *map(SelectChoice, JOB_KINDS)],
                       validators=[Optional()])  # fmt: skip
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "any"), *map(SelectChoice, ("running", "finished", "failed", "stopped"))],
        validators=[Optional()],
    )
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=10_000)])


@bp.route("/activity")
@role_required("viewer")
def index():
    settle_history(services.redis())
    form = ActivityFilterForm(request.args)
    valid = form.validate()  # an unknown kind or page shows the unfiltered first page, never a 500
    page = form.page.data if valid and form.page.data else 1
    runs, more = history.page_of(
        kind=form.kind.data if valid else None, status=form.status.data if valid else None, page=page, seen=seen()
    )  # only the jobs of targets the caller may see, whatever the filters
    arguments = {"kind": form.kind.data or "", "status": form.status.data or ""} if valid else {}
    return render_template("activity/index.html", runs=runs, form=form, page=page, more=more, arguments=arguments,
                           reason_of=history.reason_of)  # fmt: skip
