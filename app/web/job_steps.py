"""A job's progress as a person reads it: the status line, the bar and the steps, from one place.

Shared by the job page (app/web/jobs) and the API (app/web/api): the page renders `job_view`, and
job.js shows the same view from the job's JSON (the API adds it as `view`), so the status line, the
bar and the marked step can never disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.formatting import human_duration, human_size

# Each kind's phases (as app/jobs/tasks.py names them) and what a person reads for each. A restore that streams
# (no room for a copy) reads the archive whole for its checksum too, into no file: the same steps.
STEPS = {
    "backup": (("preparing", "Prepare"), ("dumping", "Dump and upload"), ("recording", "Write the manifest"),
               ("retention", "Apply retention")),
    "restore": (("checking", "Check"), ("downloading", "Read the archive from the store"),
                ("verifying", "Checksum"), ("restoring", "Restore into a scratch database"), ("swapping", "Swap in"),
                ("safety", "Back up the replaced database")),
    # A restore into a new database: the scratch takes the new name; nothing is swapped or backed up.
    "restore into new": (("checking", "Check"), ("downloading", "Read the archive from the store"),
                         ("verifying", "Checksum"), ("restoring", "Restore into a scratch database"),
                         ("renaming", "Give it the new name")),
    "verify": (("checking", "Check"), ("downloading", "Read the archive from the store"),
               ("verifying", "Checksum"), ("restoring", "Restore into a scratch database"), ("counting", "Count rows")),
}  # fmt: skip
BYTE_PHASES = ("dumping", "downloading", "safety")  # where bytes done mean something
STATUS_WORDS = {"queued": "waiting for a worker", "started": "running", "finished": "finished", "failed": "failed",
                "stopped": "stopped"}  # fmt: skip
ENDED_STATES = {"failed": "failed", "stopped": "stopped"}  # what the step a job ended in is marked


def steps_of(kind: str, phase: str, status: str) -> list[dict]:
    """[{phase, label, state}]: state is done, current, failed or stopped (where the job ended) or todo.

    A running job whose worker has not named a step yet is on the first one."""
    steps = STEPS.get(kind, ())
    names = [name for name, _ in steps]
    if status == "finished":
        current = len(names)
    elif phase in names:
        current = names.index(phase)
    else:
        current = 0 if status == "started" else -1
    here = ENDED_STATES.get(status, "current")
    return [
        {"phase": name, "label": label, "state": "done" if i < current else here if i == current else "todo"}
        for i, (name, label) in enumerate(steps)
    ]


def job_view(job: dict, now: datetime | None = None) -> dict:
    """What the page shows of `job` (as `job_status` gives it): the status words, the step being run ("Step 2
    of 4: Dump and upload"), whether a bar shows and its percent, bytes and rate, and how long it has run
    (only once it started)."""
    status, progress = job["status"], job["progress"]
    kind = "restore into new" if job["kind"] == "restore" and job.get("new_database") else job["kind"]
    steps = steps_of(kind, progress["phase"], status)
    at = next((i for i, s in enumerate(steps) if s["state"] not in ("done", "todo")), None)
    step = f"step {at + 1} of {len(steps)}: {steps[at]['label']}" if at is not None else ""
    seconds = _seconds(job, now)
    running = status == "started"
    measured = running or status == "finished"
    byte_phase = running and progress["phase"] in BYTE_PHASES and bool(progress.get("bytes_done"))
    rate = progress["bytes_done"] / seconds if byte_phase and seconds else None
    status_text = STATUS_WORDS.get(status, status)
    if status == "stopped" and job.get("stopped_by"):
        status_text = f"stopped by {job['stopped_by']}"
    return {
        "status": status,
        "status_text": status_text,
        "step_text": step,
        "steps": steps,
        "bar": measured,  # not while queued (nothing to measure yet), nor for a job that failed or was stopped
        "percent": progress.get("percent") if measured else None,
        "bytes_text": human_size(progress["bytes_done"]) if byte_phase else "",
        "rate_text": f"{human_size(rate)}/s" if rate else "",
        "elapsed_text": human_duration(seconds) if seconds is not None else "",
    }


def _seconds(job: dict, now: datetime | None) -> float | None:
    """How long the job ran (so far, while it runs); None before it started."""
    if not job.get("started_at"):
        return None
    start = _aware(datetime.fromisoformat(job["started_at"]))
    end = _aware(datetime.fromisoformat(job["ended_at"])) if job.get("ended_at") else (now or datetime.now(UTC))
    return max(0.0, (end - start).total_seconds())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # RQ keeps UTC, with or without a zone
