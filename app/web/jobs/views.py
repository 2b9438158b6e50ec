from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from app import services
from app.jobs.queue import job_status
from app.web.auth import hidden, role_required
from app.web.auth.forms import safe_next

bp = Blueprint("jobs", __name__)


@bp.route("/jobs/<job_id>")
@role_required("viewer")
def show(job_id: str):
    job = job_status(services.redis(), job_id)
    if job is None or hidden(job["target"]):
        abort(404, "no such job (jobs are kept for 7 days)")
    return render_template("jobs/show.html", job=job, next=safe_next(request.args.get("next")))
