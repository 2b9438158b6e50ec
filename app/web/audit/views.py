"""The audit log page (admins): newest first, filtered, paginated, exportable as CSV. Read only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, Response, render_template, request
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from app import services
from app.extensions import db
from app.store.models import AuditEvent
from app.web.access import role_required

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50
OUTCOMES = ["", "ok", "requested", "failed", "refused", "rate-limited"]


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    user = StringField("User", validators=[Optional(), Length(max=64)])
    action = StringField("Action", validators=[Optional(), Length(max=40)])
    outcome = SelectField("Outcome", choices=OUTCOMES, validators=[Optional()])
    target = SelectField("Target", validators=[Optional()])
    since = DateField("From", validators=[Optional()])
    until = DateField("Until", validators=[Optional()])

    def validate_since(self, field) -> None:
        if field.data and not 1970 <= field.data.year <= 2999:
            raise ValidationError("Choose a date between 1970 and 2999.")

    validate_until = validate_since

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.target.choices = ["", *(t.name for t in services.console_settings().targets)]

    def query(self):
        """The filtered select, newest first; dates are days in the display time zone."""
        zone = services.settings().zone
        select = db.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        if self.user.data:
            select = select.where(AuditEvent.username == self.user.data.strip())
        if self.action.data:
            select = select.where(AuditEvent.action.startswith(self.action.data.strip(), autoescape=True))
        if self.outcome.data:
            select = select.where(AuditEvent.outcome == self.outcome.data)
        if self.target.data:
            select = select.where(AuditEvent.target_name == self.target.data)
        if self.since.data:
            select = select.where(AuditEvent.at >= _utc(datetime.combine(self.since.data, time.min, zone)))
        if self.until.data:
            end = datetime.combine(self.until.data, time.min, zone) + timedelta(days=1)
            select = select.where(AuditEvent.at < _utc(end))
        return select


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


@bp.route("/audit")
@role_required("admin")
def index():
    form = AuditFilterForm(request.args)
    valid = form.validate()
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 1_000_000)
    events = db.paginate(form.query(), page=page, per_page=PAGE_SIZE, error_out=False) if valid else None
    # Only the filter's own fields go back into the paging links (an unknown one such as
    # `endpoint` would clash with url_for's own arguments).
    args = {k: v for k, v in request.args.items() if k in form}
    return render_template("audit/index.html", form=form, events=events, args=args), 200 if valid else 400


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A cell a spreadsheet shows as text: one that could start a formula gets a leading quote (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@bp.route("/audit.csv")
@role_required("admin")
def export():
    form = AuditFilterForm(request.args)
    if not form.validate():
        return Response("bad filter: " + "; ".join(f"{k}: {v[0]}" for k, v in form.errors.items()), 400,
                        mimetype="text/plain")  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at_utc", "user", "action", "target", "outcome", "detail", "job_id", "address", "target_name"])
    for e in db.session.execute(form.query()).scalars():
        writer.writerow([csv_cell(v) for v in (e.at.isoformat(), e.username, e.action, e.target, e.outcome, e.detail,
                                                e.job_id, e.address, e.target_name)])  # fmt: skip
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})  # fmt: skip
