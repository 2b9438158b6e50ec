"""The layers, checked on the source: each imports only the layers below it, no import cycle, one
folder per layer, a pure domain, a web layer that never runs a subprocess or talks to S3 itself,
and blueprints that do not reach into each other. Each rule reads every import (lazy ones
included) of the package with `ast`."""

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


# Each layer may import its own and those ranked below it; app.formatting is for everyone.
LAYERS = {
    "app.formatting": 0, "app.adapters": 1, "app.domain": 2, "app.config": 3, "app.extensions": 3,
    "app.store": 4, "app.accounts": 4, "app.services": 4, "app.jobs": 5, "app.operations": 6,
    "app.scheduler": 7, "app.health": 7, "app.web": 8, "app.cli": 8, "app": 9,
    "app.cli.quickstart": 10,  # what bin/console runs: it builds the app and starts its processes
}  # fmt: skip
TOP_LEVEL_MODULES = {"__init__.py", "extensions.py", "formatting.py", "operations.py", "scheduler.py"}
PACKAGES = {"adapters", "domain", "config", "store", "accounts", "services", "jobs", "health", "web", "cli"}
NOT_DATA = {"static", "templates", "__pycache__"}

DOMAIN_MUST_NOT_IMPORT = (
    "flask", "flask_login", "flask_sqlalchemy", "flask_wtf", "rq", "redis",
    "subprocess", "psycopg", "boto3", "botocore", "apprise", "fcntl",
)  # fmt: skip
ADAPTERS_MUST_NOT_IMPORT = ("flask", "flask_login", "flask_sqlalchemy", "flask_wtf", "rq")
WEB_MUST_NOT_IMPORT = ("subprocess", "boto3", "botocore", "psycopg", "app.jobs.tasks")


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The layer a module of the app belongs to: the longest key of LAYERS it starts with."""
    return max((key for key in LAYERS if module == key or module.startswith(key + ".")), key=len)


def app_imports(path: Path) -> set[str]:
    """The app modules `path` imports, as module names (`from app.x import name` counts as app.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "app" or a.name.startswith("app."))
        elif isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith("app."):
            for alias in node.names:  # `from app.store import audit` imports the module app.store.audit
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (APP.parent / (sub.replace(".", "/") + ".py")).exists()
                          or (APP.parent / sub.replace(".", "/")).is_dir() else node.module)  # fmt: skip
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): app_imports(path) for path in modules("") + modules_below()}


def modules_below() -> list[Path]:
    return sorted(p for p in APP.rglob("*.py") if p.parent != APP and "migrations" not in p.parts)


def test_each_layer_imports_only_its_own_and_the_layers_below():
    upward = []
    for module, imports in import_graph().items():
        for name in imports:
            if LAYERS[layer_of(name)] > LAYERS[layer_of(module)]:
                upward.append(f"{module} ({layer_of(module)}) imports {name} ({layer_of(name)})")
    assert sorted(upward) == []


def cycles_in(graph: dict[str, set[str]]) -> list[str]:
    """Each import cycle found by a depth-first walk, as "a -> b -> a"."""
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for name in sorted(graph.get(module, ())):
            if state.get(name) == "open":
                cycles.append(" -> ".join([*path[path.index(name):], name]))
            elif name in graph and name not in state:
                visit(name, [*path, name])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycle():
    assert cycles_in(import_graph()) == []


def test_the_cycle_check_sees_a_lazy_cycle_through_three_modules():
    graph = {"app.jobs.a": {"app.jobs.b"}, "app.jobs.b": {"app.jobs.c"}, "app.jobs.c": {"app.jobs.a"}, "app.x": set()}
    assert cycles_in(graph) == ["app.jobs.a -> app.jobs.b -> app.jobs.c -> app.jobs.a"]


def test_one_folder_per_layer_and_no_loose_module():
    loose = sorted(p.name for p in APP.glob("*.py"))
    folders = sorted(p.name for p in APP.iterdir() if p.is_dir() and p.name not in NOT_DATA)
    assert set(loose) <= TOP_LEVEL_MODULES, f"a module outside a layer's folder: {set(loose) - TOP_LEVEL_MODULES}"
    assert set(folders) <= PACKAGES, f"a folder that is no layer: {set(folders) - PACKAGES}"
    for folder in folders:
        doc = ast.get_docstring(ast.parse((APP / folder / "__init__.py").read_text()))
        assert doc, f"app/{folder}/__init__.py says in one sentence what the layer is for"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("domain", DOMAIN_MUST_NOT_IMPORT), ("adapters", ADAPTERS_MUST_NOT_IMPORT), ("web", WEB_MUST_NOT_IMPORT)],
    ids=["domain-runs-no-tool", "adapters-know-no-flask", "web-runs-no-subprocess-and-no-s3"],
)
def test_each_layer_imports_only_what_it_may(package, forbidden):
    assert offenders(package, forbidden) == {}


def test_the_direction_check_sees_an_upward_import(tmp_path):
    assert LAYERS[layer_of("app.web.auth.views")] > LAYERS[layer_of("app.operations")]
    assert layer_of("app.domain.naming") == "app.domain" and layer_of("app") == "app"


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


def test_blueprints_do_not_import_each_others_modules():
    """A blueprint's folder is its own: what several share lives in a module at app/web/'s top level
    (access, forms, job_access, …), which imports no blueprint either."""
    folders = {p.name for p in (APP / "web").iterdir() if p.is_dir() and p.name != "__pycache__"}
    crossings = []
    for path in modules("web"):
        inside = path.relative_to(APP / "web").parts
        if inside == ("__init__.py",):  # registers the blueprints
            continue
        own = inside[0] if len(inside) > 1 else None
        for name in imported(path):
            parts = name.split(".")
            if parts[:2] == ["app", "web"] and len(parts) >= 3 and parts[2] in folders and parts[2] != own:
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
