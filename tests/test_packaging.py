"""The built wheel is the whole app: pages, static files and migrations travel inside it, so it
serves from any directory (the Docker image installs it and deletes the source tree)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_an_installed_wheel_serves_its_pages_from_another_directory(tmp_path, app_env):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    skip = shutil.ignore_patterns(".git", ".venv", "instance", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis",
                                  "build", "bench", "tests")  # fmt: skip
    shutil.copytree(ROOT, source, symlinks=True, ignore=skip)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                   check=True, cwd=tmp_path)  # fmt: skip
    wheel = next(wheels.glob("pgconsole-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)  # fmt: skip
    script = textwrap.dedent(
        """
        import json, os, sys
        import app
        from app import create_app
        flask_app = create_app({"TESTING": True, **json.loads(sys.argv[1])})
        client = flask_app.test_client()
        login, css = client.get("/login"), client.get("/static/style.css")
        print(app.__file__)
        print(login.status_code, "Sign in" in login.get_data(as_text=True), css.status_code, len(css.data))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    # As in the Docker image: only wsgi.py beside the installed package, and a new store that the
    # wheel's own migrations create.
    shutil.copy(ROOT / "wsgi.py", elsewhere)
    settings = {**app_env, "INSTANCE_PATH": str(elsewhere / "instance")}
    upgraded = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=elsewhere,
                              env={**env, **settings}, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    assert "Running upgrade  -> 0001" in upgraded.stderr
    done = subprocess.run([sys.executable, "-c", script, json.dumps(settings)], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    where, answers = done.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(target))  # the installed copy, not the checkout
    status, signed_form, css_status, css_bytes = answers.split()
    assert (status, signed_form, css_status) == ("200", "True", "200") and int(css_bytes) > 1000


def test_the_lock_files_pin_every_declared_dependency():
    """bin/setup and the Dockerfile install from the lock files: a dependency added to pyproject.toml
    without running bin/lock would be missing from them."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def pinned(lock: str) -> set[str]:
        names = re.findall(r"^([A-Za-z0-9_.-]+)==", (ROOT / lock).read_text(), flags=re.MULTILINE)
        return {re.sub(r"[-_.]+", "-", name).lower() for name in names}

    def declared(requirements: list[str]) -> set[str]:
        return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", r).group()).lower() for r in requirements}

    assert declared(project["dependencies"]) <= pinned("requirements.lock")
    everything = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert declared(everything) <= pinned("requirements-dev.lock")
    assert "--hash=sha256:" in (ROOT / "requirements.lock").read_text()
