"""`/` with several targets: one row per target the user may see, so one page answers "is everything backed up?"."""

from __future__ import annotations

from flask import render_template

from app.health import targets
from app.web.access import role_required, visible_targets


@role_required("viewer")
def overview():
    statuses = [targets.status_of(t.name) for t in visible_targets()]
    return render_template("backups/overview.html", statuses=statuses)
