from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from app import operations, services
from app.config import UnknownTarget
from app.domain.cleanup import plain_reason
from app.jobs import history
from app.store.models import JobRun
from app.web.access import current_actor, role_required
from app.web.forms import ActionForm, safe_next
from app.web.job_access import may_read_log, may_stop_now, visible_job
from app.web.job_steps import job_view

bp = Blueprint("jobs", __name__)


@bp.route("/jobs/<job_id>")
@role_required("viewer")
def show(job_id: str):
    job, run = visible_job(job_id)
    if job is None and run is None:  # unknown, or of a target the caller may not see: the same answer
        abort(404, "no such job (the last 500 jobs, and those of the last 30 days, are kept)")
    if job is None:  # RQ has forgotten it; the console store has not
        job = from_record(run)
    view = job_view(job)
    return render_template(
        "jobs/show.html",
        job=job,
        run=run,
        view=view,
        steps=view["steps"],
        where=target_line(job["target"]),
        reason=plain_reason(job["error"] or "") if job["status"] == "failed" else None,
        show_log=may_read_log(job, run),
        may_stop=may_stop_now(job, run),
        action_form=ActionForm(),
        next=safe_next(request.args.get("next")),
    )


@bp.route("/jobs/<job_id>/stop", methods=["POST"])
@role_required("operator")
def stop(job_id: str):
    """The Stop button: the same request as the API's, then back to the job, which says what happened."""
    form = ActionForm()
    _, run = visible_job(job_id)
    if run is None:
        abort(404, "no such job")
    if not form.validate_on_submit():
        abort(400, "the form expired; reload the page and try again")
    try:
        with services.acting_on(run.target):
            answer = operations.request_stop(current_actor(), operations.collaborators(), job_id)
    except operations.Refused as exc:
        flash(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", "error")
    else:
        flash("Stopped before it started." if answer == "cancelled" else
              "Stopping: the job ends within a few seconds and leaves nothing behind.", "ok")  # fmt: skip
    return redirect(url_for("jobs.show", job_id=job_id))


def target_line(target: str | None) -> dict | None:
    """What the page says of the job's target in one line: its name, database, server and environment
    ("Target: prod-db, database appdb on db.internal:5432, environment production"); None if it is gone."""
    try:
        settings = services.console_settings().for_target(target)
    except UnknownTarget:  # a target since removed from the configuration
        return None
    database = settings.target
    return {"name": settings.target_name or settings.app_env, "database": database.dbname,
            "server": f"{database.host}:{database.port}", "environment": settings.app_env}  # fmt: skip


def from_record(run: JobRun) -> dict:
    """The job as job_status shows it, from its record alone (no progress or result are kept)."""
    return {
        "id": run.id, "kind": run.kind, "status": "started" if run.status == "started" else run.status,
        "progress": {"phase": "done" if run.status == "finished" else run.status, "bytes_done": run.size or 0,
                     "percent": 100 if run.status == "finished" else None},
        "result": None, "error": run.error, "requested_by": run.requested_by, "filename": run.filename,
        "target": run.target, "warning": None, "log": [],
        "stopped_by": history.stopper(run),
        "enqueued_at": run.enqueued_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
    }  # fmt: skip
