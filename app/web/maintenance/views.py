"""Settings an admin changes from the browser (schedules, retention, notifications), and the retention preview.

What the server sets (environment, TARGETS_FILE) shows as "Set by the server" and cannot be changed here;
everything else is stored in the console store (app/store/console_settings.py) and audited with before
and after. Each section's form posts to its own address and comes back to its own section.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, PasswordField, SelectField, SelectMultipleField, StringField, SubmitField
from wtforms.validators import Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app import operations, services
from app.adapters.apprise import Delivery, where
from app.adapters.storage import StorageError
from app.adapters.storage_check import CheckResult, all_passed, check_storage, summary
from app.config import NOTIFY_EVENTS, Settings
from app.config.alert_urls import apprise_urls
from app.domain.catalog import Backup
from app.domain.cron import DAY_NAMES, PRESETS, Preset, cron_problem, describe, next_runs, preset_of, retention_warnings
from app.domain.cron import schedule_of as expression_of
from app.domain.retention import retention_plan
from app.scheduler import scheduler_alive
from app.store import audit
from app.store import console_settings as stored
from app.web.access import client_address, role_required
from app.web.forms import ActionForm, require_submitted

bp = Blueprint("maintenance", __name__)
# These pages show (and change) the stored settings: read them from the store, not from this process's
# cache, which another web process's save leaves behind for a few seconds.
bp.before_request(stored.forget_cached)


@bp.app_template_filter("schedule_words")
def schedule_words(expression: str | None) -> str:
    """A schedule in words, in the console's time zone: "Every day at 02:00 (Asia/Kolkata)"."""
    return describe(expression, services.settings().zone)


_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_APPRISE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
EVENT_WORDS = {
    "backup-failed": "A backup failed", "restore-failed": "A restore failed", "verify-failed": "A restore test failed",
    "restore-finished": "A restore finished", "stale-backup": "The newest backup is too old",
    "size-drop": "A backup is much smaller than the one before",
}  # fmt: skip


class ScheduleForm(FlaskForm):
    """A schedule as a preset (hourly, every 6 hours, daily at…, weekly on…) or a cron expression."""

    kind = SelectField("How often", choices=list(PRESETS.items()))
    time = StringField("Time of day", default="02:00", render_kw={"type": "time"})
    weekday = SelectField("Day of the week", choices=[(str(n), day) for n, day in enumerate(DAY_NAMES)], default="0")
    cron = StringField("Cron expression (minute hour day-of-month month day-of-week, or @daily)",
                       validators=[Length(max=100)], render_kw={"spellcheck": "false"})  # fmt: skip
    submit = SubmitField("Save schedule")

    def fill(self, expression: str | None) -> None:
        preset = preset_of(expression)
        self.kind.data, self.time.data, self.weekday.data = preset.kind, preset.time, str(preset.weekday)
        self.cron.data = preset.cron or expression or ""

    def expression(self) -> str | None:
        """The schedule the form asks for, or None with an error at the field that is wrong."""
        kind = self.kind.data
        if kind in ("daily", "weekly") and not _TIME.match(self.time.data or ""):
            self.time.errors.append("Enter a time of day from 00:00 to 23:59, e.g. 02:30.")
            return None
        if kind == "cron":
            text = " ".join((self.cron.data or "").split())
            problem = cron_problem(text) if text else "Enter a cron expression, or choose Off."
            if problem:
                self.cron.errors.append(_sentence(problem, "The schedule"))
                return None
        time = self.time.data if _TIME.match(self.time.data or "") else "02:00"
        return expression_of(Preset(kind, f"{int(time.split(':')[0]):02d}:{time.split(':')[1]}",
                                    int(self.weekday.data or 0), self.cron.data or ""))  # fmt: skip


class RetentionForm(FlaskForm):
    max_backup_files = IntegerField("Newest backups kept", validators=[Optional()])
    retention_daily = IntegerField("Also keep the newest backup of each day, for this many days",
                                   validators=[Optional()])  # fmt: skip
    retention_weekly = IntegerField("…of each week, for this many weeks", validators=[Optional()])
    retention_monthly = IntegerField("…of each month, for this many months", validators=[Optional()])
    submit = SubmitField("Save retention")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class EventsForm(FlaskForm):
    events = MultiCheckboxField("Notify when", choices=list(EVENT_WORDS.items()))
    submit = SubmitField("Save events")


class AddChannelForm(FlaskForm):
    url = PasswordField("Apprise URL (e.g. slack://…, mailtos://…, ntfys://…)", validators=[Length(max=2000)],
                        render_kw={"autocomplete": "off", "spellcheck": "false"})  # fmt: skip
    submit = SubmitField("Add channel")


class RemoveChannelForm(FlaskForm):
    channel = HiddenField()
    submit = SubmitField("Remove")


def _sentence(problem: str, subject: str) -> str:
    """A problem as a sentence: "Minute must be 0–59 (got 61)." or "The schedule must be …"."""
    text = problem if problem[:1].isupper() else f"{subject} {problem}"
    return text if text.endswith(".") else text + "."


def fingerprint(url: str) -> str:
    """What names a stored URL in a form: never the URL itself (it holds a secret)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _locked_hint(name: str) -> str:
    variable = stored.REGISTRY[name].variable
    several = services.console_settings().several_targets and stored.REGISTRY[name].per_target
    return f"Set by the server ({variable}{' or the targets file' if several else ''}); change it there."


def _saved(section: str, change: str | None, settings: Settings):
    """Audit a change and go back to its section, saying so there."""
    if change:
        target = settings.target_name if settings.several_targets else None
        audit.record("settings", "ok", username=current_user.username, detail=change, address=client_address(),
                     target_name=target)  # fmt: skip
    flash("Saved; schedulers and workers use it within a minute." if change else "Nothing changed.", "ok")
    return redirect(url_for("maintenance.settings_page", saved=section, _anchor=section), 303)


def _save_or_refuse(name: str, value: object, settings: Settings, field) -> str | None | bool:
    """Save one setting; False (with the refusal at `field`) when it may not be stored."""
    try:
        return stored.save(name, value, settings, current_user.username)
    except stored.Refused as exc:
        field.errors.append(str(exc))
        return False


def _schedule_forms(settings: Settings, posted: str | None = None) -> dict[str, ScheduleForm]:
    forms = {}
    for name, prefix in (("backup_schedule", "backup"), ("verify_schedule", "verify")):
        form = ScheduleForm(prefix=prefix, formdata=None if posted != name else request.form)
        if posted != name:
            form.fill(stored.current(name, settings))  # type: ignore[arg-type]
        forms[name] = form
    return forms


def _retention_form(settings: Settings, posted: bool = False) -> RetentionForm:
    if posted:
        return RetentionForm()
    return RetentionForm(formdata=None, **{name: getattr(settings, name) for name in RETENTION_FIELDS})


RETENTION_FIELDS = ("max_backup_files", "retention_daily", "retention_weekly", "retention_monthly")


@bp.route("/settings")
@bp.route("/targets/<target>/settings")
@role_required("admin")
def settings_page():
    return render_settings(200)


@bp.route("/settings/<any(backup_schedule, verify_schedule):name>", methods=["POST"])
@bp.route("/targets/<target>/settings/<any(backup_schedule, verify_schedule):name>", methods=["POST"])
@role_required("admin")
def save_schedule(name: str):
    settings = services.settings()
    forms = _schedule_forms(settings, posted=name)
    form = forms[name]
    if form.validate_on_submit():
        if stored.locked(name, settings):
            form.kind.errors = [_locked_hint(name)]
        elif (expression := form.expression()) is not None:
            change = _save_or_refuse(name, expression, settings, form.cron)
            if change is not False:
                return _saved(name.replace("_", "-"), change, settings)  # type: ignore[arg-type]
    return render_settings(400, schedule_forms=forms)


@bp.route("/settings/retention", methods=["POST"])
@bp.route("/targets/<target>/settings/retention", methods=["POST"])
@role_required("admin")
def save_retention():
    settings = services.settings()
    form = _retention_form(settings, posted=True)
    if form.validate_on_submit():
        changes, wanted = [], {}
        for name in RETENTION_FIELDS:
            field = getattr(form, name)
            posted = bool(field.raw_data and field.raw_data[0].strip())
            if stored.locked(name, settings):  # a disabled field is not posted; a posted different value is refused
                if posted and field.data != getattr(settings, name):
                    field.errors = [_locked_hint(name)]
            elif not posted:
                field.errors = ["Enter a whole number."]
            else:
                wanted[name] = field.data
        if not any(getattr(form, name).errors for name in RETENTION_FIELDS):
            for name, value in wanted.items():
                change = _save_or_refuse(name, value, settings, getattr(form, name))
                if change is False:
                    break
                if change:
                    changes.append(change)
            else:
                return _saved("retention", "; ".join(changes) or None, settings)
    return render_settings(400, retention_form=form)


@bp.route("/settings/notifications/events", methods=["POST"])
@role_required("admin")
def save_events():
    settings = services.settings()
    form = EventsForm()
    if form.validate_on_submit():
        if stored.locked("notify_events", settings):
            form.events.errors = [_locked_hint("notify_events")]
        else:
            chosen = tuple(e for e in NOTIFY_EVENTS if e in (form.events.data or []))
            change = _save_or_refuse("notify_events", chosen, settings, form.events)
            if change is not False:
                return _saved("notifications", change, settings)  # type: ignore[arg-type]
    return render_settings(400, events_form=form)


@bp.route("/settings/notifications/channels", methods=["POST"])
@role_required("admin")
def add_channel():
    settings = services.settings()
    form = AddChannelForm()
    if form.validate_on_submit():
        url = (form.url.data or "").strip()
        if stored.locked("notify_urls", settings):
            form.url.errors = [_locked_hint("notify_urls")]
        elif not _APPRISE_URL.match(url):
            form.url.errors = ["Enter an Apprise URL: scheme://…, e.g. slack://… or mailtos://… (no spaces)."]
        elif url in settings.notify_urls:
            form.url.errors = ["This channel is already there."]
        else:
            change = _save_or_refuse("notify_urls", (*settings.notify_urls, url), settings, form.url)
            if change is not False:
                return _saved("notifications", change, settings)  # type: ignore[arg-type]
    return render_settings(400, channel_form=form)


@bp.route("/settings/notifications/channels/remove", methods=["POST"])
@role_required("admin")
def remove_channel():
    settings = services.settings()
    form = require_submitted(RemoveChannelForm())
    kept = tuple(url for url in settings.notify_urls if fingerprint(url) != form.channel.data)
    if stored.locked("notify_urls", settings) or kept == settings.notify_urls:
        flash("That channel cannot be removed here: it is set by the server, or already gone.", "error")
        return redirect(url_for("maintenance.settings_page", _anchor="notifications"), 303)
    change = stored.save("notify_urls", kept, settings, current_user.username)
    return _saved("notifications", change, settings)


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
    return render_settings(200, check_results=results)


@bp.route("/settings/test-notification", methods=["POST"])
@role_required("admin")
def test_notification():
    """Send one message to every notification URL now and show each URL's outcome (by scheme and host)."""
    require_submitted(ActionForm())
    actor = operations.Actor(current_user.username, "admin", client_address())
    deliveries = operations.send_test_notification(actor, services.settings())
    return render_settings(200, notify_results=deliveries)


def _channels(settings: Settings) -> list[dict]:
    """Every channel by scheme and host: the page's (removable) and the server's (locked)."""
    locked = stored.locked("notify_urls", settings)
    page = [] if locked else list(settings.notify_urls)
    return [
        {"where": where(url), "fingerprint": fingerprint(url) if url in page else None}
        for url in apprise_urls(settings)
    ]


def render_settings(status: int, *, schedule_forms: dict[str, ScheduleForm] | None = None,
                    retention_form: RetentionForm | None = None, events_form: EventsForm | None = None,
                    channel_form: AddChannelForm | None = None, check_results: list[CheckResult] | None = None,
                    notify_results: list[Delivery] | None = None):  # fmt: skip
    settings = services.settings()
    schedules = {name: getattr(settings, name) for name in ("backup_schedule", "verify_schedule")}
    zone = settings.zone
    policy = services.retention_policy(settings)
    forms = schedule_forms or _schedule_forms(settings)
    locks = {name: _locked_hint(name) for name in stored.REGISTRY if stored.locked(name, settings)}
    for name, form in forms.items():
        if name in locks:
            for field in (form.kind, form.time, form.weekday, form.cron):
                field.render_kw = {**(field.render_kw or {}), "disabled": True}
    retention = retention_form or _retention_form(settings)
    for name in RETENTION_FIELDS:
        if name in locks:
            field = getattr(retention, name)
            field.render_kw = {**(field.render_kw or {}), "disabled": True}
            field.data = getattr(settings, name)
    events = events_form or EventsForm(formdata=None, events=list(settings.notify_events))
    channels = _channels(settings)
    return render_template(
        "maintenance/settings.html", settings=settings, schedules=schedules, forms=forms, locks=locks,
        described={name: describe(value, zone) for name, value in schedules.items()},
        runs={name: next_runs(value, zone, 5) if value else [] for name, value in schedules.items()},
        warnings=retention_warnings(schedules["backup_schedule"], zone, policy.newest, policy.daily, policy.weekly,
                                    policy.monthly),
        scheduler_alive=scheduler_alive(services.redis(), settings.redis_namespace),
        policy=policy, retention_form=retention, saved=request.args.get("saved"),
        check_form=ActionForm(formdata=None), storage=services.storage().description,
        check_results=check_results, check_passed=check_results and all_passed(check_results),
        events_form=events, event_words=EVENT_WORDS, channel_form=channel_form or AddChannelForm(formdata=None),
        remove_form=RemoveChannelForm(formdata=None), channels=channels,
        notify_form=ActionForm(formdata=None), notify_results=notify_results,
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
