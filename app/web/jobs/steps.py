"""A job's progress as the steps a person follows, with the current one marked."""

from __future__ import annotations

# Each kind's phases (as app/jobs/tasks.py names them) and what a person reads for each. A restore that streams
# (no room for a copy) reads the archive whole for its checksum too, into no file: the same steps.
STEPS = {
    "backup": (("preparing", "Prepare"), ("dumping", "Dump and upload"), ("recording", "Write the manifest"),
               ("retention", "Apply retention")),
    "restore": (("checking", "Check"), ("downloading", "Read the archive from the store"),
                ("verifying", "Checksum"), ("restoring", "Restore into a scratch database"), ("swapping", "Swap in"),
                ("safety", "Back up the replaced database")),
    "verify": (("checking", "Check"), ("downloading", "Read the archive from the store"),
               ("verifying", "Checksum"), ("restoring", "Restore into a scratch database"), ("counting", "Count rows")),
}  # fmt: skip
BYTE_PHASES = ("dumping", "downloading", "safety")  # where bytes done mean something


def steps_of(kind: str, phase: str, status: str) -> list[dict]:
    """[{phase, label, state}]: state is done, current, failed (where a failed job stopped) or todo."""
    steps = STEPS.get(kind, ())
    names = [name for name, _ in steps]
    current = len(names) if status == "finished" else names.index(phase) if phase in names else -1
    here = "failed" if status == "failed" else "current"
    return [
        {"phase": name, "label": label, "state": "done" if i < current else here if i == current else "todo"}
        for i, (name, label) in enumerate(steps)
    ]
