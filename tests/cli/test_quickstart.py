"""`bin/console` runs `app.cli.quickstart`: it starts flask and gunicorn from the checkout's root."""

from __future__ import annotations

from app.cli import quickstart
from tests.support import ROOT


def test_the_quickstart_runs_its_processes_from_the_checkout():
    assert quickstart.ROOT == ROOT
    assert (quickstart.ROOT / "wsgi.py").is_file()  # `flask --app wsgi` and `gunicorn wsgi:app` find it there
