"""Settings an admin changes from the browser, and the retention preview."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import Length, ValidationError

from app import operations, services
from app.adapters.apprise import Delivery, where
from app.adapters.storage import StorageError
from app.adapters.storage_check import CheckResult, all_passed, check_storage, summary
from app.config import cron_problem
from app.config.alert_urls import apprise_urls
from app.domain.catalog import Backup
from app.domain.cron import next_run
from app.domain.retention import retention_plan
from app.scheduler import scheduler_alive
from app.store import audit
from app.store.schedule import effective_schedule, save_schedule
from app.web.access import client_address, role_required
from app.web.forms import ActionForm, require_submitted

bp = Blueprint("maintenance", __name__)


class ScheduleForm(FlaskForm):
    schedule = StringField("Backup schedule (cron: minute hour day month weekday; empty for none)",
                           validators=[Length(max=100)])  # fmt: skip
    submit = SubmitField("Save schedule")

    def validate_schedule(self, field) -> None:
        field.data = " ".join((field.data or "").split())
        problem = field.data and cron_problem(field.data)
        if problem:
            raise ValidationError(f"The schedule {problem}.")


@bp.route("/settings", methods=["GET", "POST"])
@bp.route("/targets/<target>/settings", methods=["GET", "POST"])
@role_required("admin")
def settings_page():
    settings = services.settings()
    form = ScheduleForm(schedule=effective_schedule(settings) or "")
    if form.validate_on_submit():
        save_schedule(form.schedule.data, current_user.username)
        audit.record("schedule", "ok", username=current_user.username, detail=form.schedule.data or "off",
                     address=client_address())  # fmt: skip
        flash("Schedule saved; schedulers pick it up within a minute.", "ok")
        return redirect(url_for("maintenance.settings_page"), 303)
    return render_settings(form, 400 if request.method == "POST" else 200)


@bp.route("/settings/storage-check", methods=["POST"])
@bp.route("/targets/<target>/settings/storage-check", methods=["POST"])
@role_required("admin")
def storage_check():
    """Run every storage call the console needs (in the domain layer) and show each outcome here."""
    require_submitted(ActionForm())
    storage = services.storage()
    results = check_storage(storage)
    audit.record("storage-check", "ok" if all_passed(results) else "failed", username=current_user.username,
                 target=storage.description, detail=summary(results), address=client_address())  # fmt: skip
    # formdata=None: the posted form is this button's, not the schedule's.
    schedule_form = ScheduleForm(formdata=None, schedule=effective_schedule(services.settings()) or "")
    return render_settings(schedule_form, 200, results)


@bp.route("/settings/test-notification", methods=["POST"])
@role_required("admin")
def test_notification():
    """Send one message to every notification URL now and show each URL's outcome (by scheme and host)."""
    require_submitted(ActionForm())
    actor = operations.Actor(current_user.username, "admin", client_address())
    deliveries = operations.send_test_notification(actor, services.settings())
    schedule_form = ScheduleForm(formdata=None, schedule=effective_schedule(services.settings()) or "")
    return render_settings(schedule_form, 200, notify_results=deliveries)


def render_settings(form: ScheduleForm, status: int, check_results: list[CheckResult] | None = None,
                    notify_results: list[Delivery] | None = None):  # fmt: skip
    settings = services.settings()
    schedule = effective_schedule(settings)
    return render_template(
        "maintenance/settings.html", form=form, schedule=schedule,
        next_run=next_run(schedule, settings.zone) if schedule else None,
        scheduler_alive=scheduler_alive(services.redis(), settings.redis_namespace),
        policy=services.retention_policy(settings), settings=settings,
        check_form=ActionForm(formdata=None), storage=services.storage().description,
        check_results=check_results, check_passed=check_results and all_passed(check_results),
        notify_form=ActionForm(formdata=None), channels=[where(url) for url in apprise_urls(settings)],
        notify_results=notify_results,
    ), status  # fmt: skip


@bp.route("/retention")
@bp.route("/targets/<target>/retention")
@role_required("operator")
def retention_preview():
    settings = services.settings()
    ours = operations.collaborators().backups
    policy = services.retention_policy(settings)
    try:
        backups = ours.listing()
    except StorageError as exc:
        flash(f"Cannot list backups: {exc}", "error")
        backups = []
    # Retention runs right after a backup, so preview it with the next backup in place (taken now).
    now = datetime.now(UTC)
    upcoming = ours.owner.filename_at(now, settings.zone)
    nxt = Backup(upcoming, 0, now, now, ours.owner.app_name, ours.owner.environment, False)
    plan = retention_plan([nxt, *backups], ours.owner, policy, settings.zone, upcoming, trusted=ours.is_trusted)
    return render_template("maintenance/retention.html", plan=plan, policy=policy, settings=settings,
                           upcoming=upcoming)  # fmt: skip
