from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, render_template, request

from app.domain.cleanup import plain_reason
from app.store.models import JobRun
from app.web.access import role_required
from app.web.forms import ActionForm, safe_next
from app.web.job_access import visible_job
from app.web.jobs.steps import steps_of

bp = Blueprint("jobs", __name__)


@bp.route("/jobs/<job_id>")
@role_required("viewer")
def show(job_id: str):
    job, run = visible_job(job_id)
    if job is None and run is None:  # unknown, or of a target the caller may not see: the same answer
        abort(404, "no such job (the last 500 jobs, and those of the last 30 days, are kept)")
    if job is None:  # RQ has forgotten it; the console store has not
        job = from_record(run)
    return render_template(
        "jobs/show.html",
        job=job,
        run=run,
        steps=steps_of(job["kind"], job["progress"]["phase"], job["status"]),
        seconds=elapsed(job),
        reason=plain_reason(job["error"] or "") if job["status"] == "failed" else None,
        action_form=ActionForm(),
        next=safe_next(request.args.get("next")),
    )


def elapsed(job: dict) -> float | None:
    """Seconds from start to end of a job that ended (job.js counts while it runs)."""
    if not job["started_at"] or not job["ended_at"]:
        return None
    return (datetime.fromisoformat(job["ended_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


def from_record(run: JobRun) -> dict:
    """The job as job_status shows it, from its record alone (no progress or result are kept)."""
    return {
        "id": run.id, "kind": run.kind, "status": "started" if run.status == "started" else run.status,
        "progress": {"phase": "done" if run.status == "finished" else run.status, "bytes_done": run.size or 0,
                     "percent": 100 if run.status == "finished" else None},
        "result": None, "error": run.error, "requested_by": run.requested_by, "filename": run.filename,
        "target": run.target, "warning": None, "enqueued_at": run.enqueued_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
    }  # fmt: skip
