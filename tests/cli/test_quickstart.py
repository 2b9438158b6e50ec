"""`bin/console` runs `app.cli.quickstart`: it starts flask and gunicorn from the checkout's root."""

from __future__ import annotations

from app.cli import quickstart
from tests.support import ROOT


def test_the_quickstart_runs_its_processes_from_the_checkout():
    assert quickstart.ROOT == ROOT
    assert (quickstart.ROOT / "wsgi.py").is_file()  # `flask --app wsgi` and `gunicorn wsgi:app` find it there


def test_a_port_in_use_stops_it_with_one_line_naming_port(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "INSTANCE_PATH": str(tmp_path / "instance")}
        done = subprocess.run([sys.executable, "-m", "app.cli.quickstart"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"pgconsole: port {port} is already in use; start on another with e.g. PORT=5001 bin/console"
    ]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "instance").exists()  # checked before anything is made or started


def test_port_must_be_a_number(monkeypatch):
    import pytest

    monkeypatch.setenv("PORT", "http")
    with pytest.raises(SystemExit, match="PORT must be a port number from 1 to 65535"):
        quickstart.chosen_port()


def test_the_demo_needs_no_two_factor_and_its_database_can_be_renamed(tmp_path):
    defaults = quickstart.demo_defaults(tmp_path, {})
    assert defaults["REQUIRE_2FA"] == "none"
    assert defaults["DATABASE_URL"].endswith("/pgconsole_demo")
    renamed = quickstart.demo_defaults(tmp_path, {"DEMO_DATABASE": "pgconsole_demo_two"})
    assert renamed["DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/pgconsole_demo_two"
