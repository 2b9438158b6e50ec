"""The layers of DESIGN.md, checked on the source: a pure domain, thin jobs, a web layer that
never runs a subprocess or talks to S3 itself, and blueprints that do not reach into each
other's views. Each rule reads every import (and call) of the package with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"


def modules(package: str) -> list[Path]:
    return sorted((APP / package).rglob("*.py")) if package else sorted(APP.glob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module name `path` imports, at any depth of the file (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in modules(package):
        bad = sorted(n for n in imported(path) if any(n == f or n.startswith(f + ".") for f in forbidden))
        if bad:
            found[str(path.relative_to(APP.parent))] = bad
    return found


DOMAIN_MUST_NOT_IMPORT = (
    "flask", "flask_login", "flask_sqlalchemy", "flask_wtf", "rq", "redis",
    "app.web", "app.jobs", "app.services", "app.operations", "app.extensions", "app.store.models", "app.store.audit",
)  # fmt: skip
WEB_MUST_NOT_IMPORT = ("subprocess", "boto3", "botocore", "psycopg", "app.jobs.tasks")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("domain", DOMAIN_MUST_NOT_IMPORT), ("web", WEB_MUST_NOT_IMPORT), ("jobs", ("app.web",))],
    ids=["domain-is-pure", "web-runs-no-subprocess-and-no-s3", "jobs-know-no-pages"],
)
def test_each_layer_imports_only_what_it_may(package, forbidden):
    assert offenders(package, forbidden) == {}


def test_the_checker_sees_lazy_imports_and_from_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from flask import request\n    import subprocess as sp\n")
    assert {"flask", "flask.request", "subprocess"} <= imported(sample)


def test_the_web_layer_calls_no_process_or_shell():
    calls = []
    for path in modules("web"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("system", "popen", "Popen", "spawnv", "execv"):
                calls.append(f"{path.relative_to(APP.parent)}:{node.lineno} {node.attr}")
    assert calls == []


def test_blueprints_do_not_import_each_others_views():
    crossings = []
    for path in modules("web"):
        inside = path.relative_to(APP / "web").parts
        if len(inside) == 1:  # app/web/__init__.py registers the blueprints; forms.py is shared
            continue
        own = inside[0]
        for name in imported(path):
            parts = name.split(".")
            if parts[:2] == ["app", "web"] and len(parts) >= 4 and parts[3] == "views" and parts[2] != own:
                crossings.append(f"{path.relative_to(APP.parent)} imports {name}")
    assert crossings == []


def test_requests_for_work_are_enqueued_only_by_the_application_layer():
    """Pages, API, CLI and scheduler ask `app.operations`; only it (and the queue itself) calls start_job."""
    callers = []
    for path in sorted(APP.rglob("*.py")):
        text = path.read_text()
        if "start_job(" in text and path.name not in ("operations.py", "queue.py"):
            callers.append(str(path.relative_to(APP.parent)))
    assert callers == []
