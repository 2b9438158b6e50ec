"""Several databases in one console (issue 15): targets from TARGETS_FILE, each with its own pages,
API, passkey, roles, schedule and audit trail; one overview; the seed's routes on the default target.

Three targets on three real databases: staging and production share one moto bucket (and one
prefix, so each lists the other's backups), reports keeps its backups in a folder.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app.jobs.queue import queue_for
from tests.helpers import AuthActions, job_of, log_in, run_jobs_for
from tests.support import ROOT
from tests.support.databases import PG, create_database, database_names, drop_database, new_name
from tests.support.databases import table_fingerprint as fingerprint
from tests.support.processes import child_env

PASSKEYS = {"staging": "staging-passkey-1", "production": "production-passkey-2", "reports": "reports-passkey-3"}


def targets_toml(databases: dict[str, str], bucket_url: str, folder_url: str, default: str = "staging") -> str:
    storage = {"staging": bucket_url, "production": bucket_url, "reports": folder_url}
    environment = {"staging": "staging", "production": "production", "reports": "staging"}
    app_name = {"staging": "pharmatracker", "production": "pharmatracker", "reports": "reports"}
    tables = [f'default = "{default}"']
    for name, dbname in databases.items():
        tables.append(f"""
[targets.{name}]
environment = "{environment[name]}"
database_url = "postgresql://postgres@127.0.0.1:5432/{dbname}"
storage_url = "{storage[name]}"
app_name = "{app_name[name]}"
restore_passkey_env = "{name.upper()}_PASSKEY"
""")
    return "\n".join(tables)


@pytest.fixture
def databases(pg_admin, target_db):
    """production is the conftest's target database; staging and reports are made here."""
    made = {"staging": new_name(), "reports": new_name()}
    create_database(pg_admin, made["staging"], rows=300)
    create_database(pg_admin, made["reports"], rows=100)
    yield {"staging": made["staging"], "production": target_db, "reports": made["reports"]}
    for name in made.values():
        drop_database(pg_admin, name)
        for leftover in database_names(pg_admin, f"{name}%"):
            drop_database(pg_admin, leftover)


@pytest.fixture
def targets_env(app_env, databases, s3_server, tmp_path) -> dict[str, str]:
    """The environment of a console with three targets (as the web, worker and CLI processes get it)."""
    path = tmp_path / "targets.toml"
    path.write_text(targets_toml(databases, s3_server["BACKUP_STORAGE_URL"] + "/pharmatracker",
                                 (tmp_path / "reports-backups").as_uri()))  # fmt: skip
    env = {k: v for k, v in app_env.items() if k not in ("DATABASE_URL", "BACKUP_STORAGE_URL", "RESTORE_PASSKEY")}
    return {**env, **{k: v for k, v in s3_server.items() if k != "BACKUP_STORAGE_URL"}, "TARGETS_FILE": str(path),
            **{f"{name.upper()}_PASSKEY": key for name, key in PASSKEYS.items()}}  # fmt: skip


@pytest.fixture
def console(make_app, targets_env):
    app = make_app(**targets_env)
    yield app
    from app.jobs import runtime

    runtime.configure(None)


def make_person(app, username: str, role: str, grants: dict[str, str] | None = None):
    """A new user with a global role and per-target roles, and a client signed in as them."""
    from app.accounts import people
    from app.accounts.people import create_user
    from tests.helpers import PASSWORD

    with app.app_context():
        user = create_user(username, role, PASSWORD, created_by="test")
        for target, target_role in (grants or {}).items():
            people.grant_target_role(user, target, target_role, "test", ["staging", "production", "reports"])
    client = app.test_client()
    log_in(app, client, username)
    return client, AuthActions(client)


def token(app, username: str, role: str | None = None) -> dict[str, str]:
    from app.accounts import people
    from app.accounts.people import find_user

    with app.app_context():
        plain = people.create_token(find_user(username), "test", role, None, "test")
    return {"Authorization": f"Bearer {plain}"}


def backed_up(app, client, headers, target: str) -> str:
    answer = client.post(f"/api/targets/{target}/backup", headers=headers)
    assert answer.status_code == 202, answer.get_json()
    run_jobs_for(app)
    status = job_of(app, answer.get_json()["job_id"])
    assert status["status"] == "finished", status["error"]
    assert status["target"] == target
    return status["result"]["filename"]


def delete_customers(dbname: str, above: int) -> None:
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE customer_id > %s", (above,))
        conn.execute("DELETE FROM customers WHERE id > %s", (above,))


# --------------------------------------------------------------------------- backups and restores


def test_a_backup_and_a_restore_of_each_target(console, databases, tmp_path):
    client, _ = make_person(console, "ada", "admin")
    headers = token(console, "ada")
    made = {name: backed_up(console, client, headers, name) for name in ("staging", "production", "reports")}
    assert made["staging"].startswith("pharmatracker-staging-on-")
    assert made["production"].startswith("pharmatracker-production-on-")
    assert made["reports"].startswith("reports-staging-on-")
    assert (tmp_path / "reports-backups" / made["reports"]).is_file()  # the target in a folder

    # staging and production share a bucket: each lists every backup in it, from every environment
    for name in ("staging", "production"):
        listed = [b["filename"] for b in client.get(f"/api/targets/{name}/backups", headers=headers).get_json()]
        assert set(listed) == {made["staging"], made["production"]}
    listed = [b["filename"] for b in client.get("/api/targets/reports/backups", headers=headers).get_json()]
    assert listed == [made["reports"]]

    before = {name: fingerprint(db) for name, db in databases.items()}
    for name, dbname in databases.items():
        delete_customers(dbname, 10)
        answer = client.post(f"/api/targets/{name}/restore", headers=headers,
                             json={"filename": made[name], "passkey": PASSKEYS[name]})  # fmt: skip
        assert answer.status_code == 202, answer.get_json()
        run_jobs_for(console)
        assert job_of(console, answer.get_json()["job_id"])["status"] == "finished"
        assert fingerprint(dbname) == before[name], name

    from app.store.models import AuditEvent

    with console.app_context():
        restores = AuditEvent.query.filter_by(action="restore", outcome="ok").all()
        assert sorted(e.target_name for e in restores) == ["production", "reports", "staging"]
    page = client.get("/audit?target=reports").get_data(as_text=True)
    assert made["reports"] in page and made["production"] not in page


def test_a_staging_backup_restored_on_productions_page_goes_into_production_only(console, databases):
    client, auth = make_person(console, "ada", "admin")
    headers = token(console, "ada")
    delete_customers(databases["staging"], 50)  # staging's data now differs from production's
    staging_file = backed_up(console, client, headers, "staging")
    backed_up(console, client, headers, "production")  # the recent backup production's restore needs
    staging_before, production_before = fingerprint(databases["staging"]), fingerprint(databases["production"])
    assert staging_before != production_before

    url = f"/targets/production/backups/{staging_file}/restore"
    page = client.get(url).get_data(as_text=True)
    # Another environment's backup: production's database name, prefixed by the backup's environment.
    confirm = f"staging/{databases['production']}"
    assert f"Type {confirm} to confirm" in page

    def post(passkey: str, confirm: str):
        return client.post(url, data={"passkey": passkey, "confirm": confirm, "csrf_token": auth.csrf_token(url)})

    assert post(PASSKEYS["production"], databases["production"]).status_code == 400  # the environment is missing
    wrong = post(PASSKEYS["staging"], confirm)  # staging's passkey does not open production
    assert wrong.status_code == 403 and "wrong passkey" in wrong.get_data(as_text=True)
    ok = post(PASSKEYS["production"], confirm)
    assert ok.status_code == 303
    job_page = client.get(ok.headers["Location"]).get_data(as_text=True)
    assert re.search(r'id="job-target">Target: <strong>production</strong>', job_page)
    run_jobs_for(console)
    assert job_of(console, ok.headers["Location"].rsplit("/", 1)[1])["status"] == "finished"
    assert fingerprint(databases["production"]) == staging_before  # production now holds staging's data
    assert fingerprint(databases["staging"]) == staging_before  # and staging was never touched


# --------------------------------------------------------------------------- roles and tokens


def test_per_target_roles_override_the_global_role(console, targets_env):
    admin, _ = make_person(console, "ada", "admin")
    staging_file = backed_up(console, admin, token(console, "ada"), "staging")
    production_file = backed_up(console, admin, token(console, "ada"), "production")
    reports_file = backed_up(console, admin, token(console, "ada"), "reports")
    reports_job = admin.post("/api/targets/reports/backup", headers=token(console, "ada")).get_json()["job_id"]

    # A developer: admin on staging (set on /users), viewer on production (from the CLI), none on reports.
    dev, _ = make_person(console, "dev", "viewer")
    admin_auth = AuthActions(admin)
    with console.app_context():
        from app.accounts.people import find_user

        dev_id = find_user("dev").id
    form = {"target": "staging", "role": "admin", "csrf_token": admin_auth.csrf_token("/users")}
    answer = admin.post(f"/users/{dev_id}/target-role", data=form)
    assert answer.status_code == 303
    grant = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "users", "grant", "dev", "--target",
                            "reports", "--role", "none"], cwd=ROOT, env=child_env(targets_env), capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert grant.returncode == 0 and grant.stdout.strip() == "dev is now none on reports.", grant.stderr
    assert "staging: admin" in admin.get("/users").get_data(as_text=True)
    log_in(console, dev, "dev")  # the role changes ended dev's sessions

    assert dev.get(f"/targets/staging/backups/{staging_file}/restore").status_code == 200
    assert dev.get(f"/targets/production/backups/{production_file}/restore").status_code == 403
    headers = token(console, "dev")
    refused = dev.post("/api/targets/production/restore", headers=headers,
                       json={"filename": production_file, "passkey": PASSKEYS["production"]})  # fmt: skip
    assert refused.status_code == 403
    assert dev.get("/targets/production/").status_code == 200  # still a viewer there

    for url in ("/targets/reports/", f"/targets/reports/backups/{reports_file}/restore", "/targets/reports/settings",
                "/api/targets/reports/backups", f"/jobs/{reports_job}", f"/api/jobs/{reports_job}"):
        assert dev.get(url).status_code == 404, url
        assert dev.get(url, headers=headers).status_code == 404, url
    assert dev.post("/api/targets/reports/backup", headers=headers).status_code == 404
    assert dev.get("/targets/nosuch/").status_code == 404  # unknown and hidden look the same
    assert [t["name"] for t in dev.get("/api/targets", headers=headers).get_json()] == ["staging", "production"]
    overview = dev.get("/").get_data(as_text=True)
    assert 'data-target="staging"' in overview and 'data-target="reports"' not in overview


def test_a_token_acts_with_its_owners_role_on_each_target_capped_by_its_own(console):
    admin, _ = make_person(console, "ada", "admin", {"production": "viewer"})
    viewer_token, admin_token = token(console, "ada", "viewer"), token(console, "ada", "admin")
    assert admin.post("/api/targets/staging/backup", headers=viewer_token).status_code == 403  # the token's cap
    assert admin.get("/api/targets/staging/backups", headers=viewer_token).status_code == 200
    answer = admin.post("/api/targets/production/backup", headers=admin_token)  # the owner's role there caps it
    assert answer.status_code == 403 and "viewer" in answer.get_json()["error"]
    assert admin.post("/api/targets/staging/backup", headers=admin_token).status_code == 202


def test_the_seeds_routes_act_on_the_default_target(console, databases):
    client, _ = make_person(console, "ada", "admin")
    headers = token(console, "ada")
    answer = client.post("/api/setting/backup", headers=headers)
    assert answer.status_code == 202
    run_jobs_for(console)
    status = job_of(console, answer.get_json()["job_id"])
    assert status["target"] == "staging" and status["result"]["filename"].startswith("pharmatracker-staging-on-")
    assert client.get("/api/setting/backups", headers=headers).get_json() == \
        client.get("/api/targets/staging/backups", headers=headers).get_json()  # fmt: skip
    filename = status["result"]["filename"]
    refused = client.post("/api/setting/restore", headers=headers,
                          json={"filename": filename, "passkey": PASSKEYS["production"]})  # fmt: skip
    assert refused.status_code == 403  # the default target's passkey, not another's
    before = fingerprint(databases["staging"])
    delete_customers(databases["staging"], 5)
    answer = client.post("/api/setting/restore", headers=headers,
                         json={"filename": filename, "passkey": PASSKEYS["staging"]})  # fmt: skip
    assert answer.status_code == 202
    run_jobs_for(console)
    assert fingerprint(databases["staging"]) == before
    assert client.post("/api/targets/nosuch/backup", headers=headers).status_code == 404


# --------------------------------------------------------------------------- the rest, per target


def test_two_targets_on_one_database_share_its_lock(make_app, app_env, target_db, tmp_path):
    path = tmp_path / "same.toml"
    path.write_text("\n".join(f"""
[targets.{name}]
environment = "{name}"
database_url = "postgresql://postgres@127.0.0.1:5432/{target_db}"
storage_url = "{(tmp_path / name).as_uri()}"
""" for name in ("one", "two")))
    app = make_app(TARGETS_FILE=str(path))
    client, _ = make_person(app, "ada", "admin")
    headers = token(app, "ada")
    assert client.post("/api/targets/one/backup", headers=headers).status_code == 202
    busy = client.post("/api/targets/two/backup", headers=headers)
    assert busy.status_code == 409 and "another backup or restore" in busy.get_json()["error"]


def test_one_scheduler_fires_each_targets_schedule_with_its_name(console, redis_server):
    from app.jobs import runtime
    from app.scheduler import ConsoleScheduler, scheduled_backup
    from app.store.schedule import save_schedule

    settings = console.config["SETTINGS"]
    client, auth = make_person(console, "ada", "admin")
    saved = client.post("/targets/reports/settings", data={"schedule": "0 3 * * *",
                                                            "csrf_token": auth.csrf_token("/targets/reports/settings")})
    assert saved.status_code == 303 and saved.headers["Location"] == "/targets/reports/settings"
    assert "<code>0 3 * * *</code>" in client.get("/targets/reports/").get_data(as_text=True)
    assert "<code>0 3 * * *</code>" not in client.get("/targets/staging/").get_data(as_text=True)
    with console.app_context():
        runtime.configure(console)
        save_schedule("*/5 * * * *", "ada", settings.for_target("production"))
        scheduler = ConsoleScheduler(settings, redis_server, settings.redis_namespace, scheduled_backup)
        assert sorted(j.name for j in scheduler.get_jobs()) == ["scheduled-backup:production",
                                                                 "scheduled-backup:reports"]  # fmt: skip
        for cron_job in scheduler.get_jobs():
            cron_job.next_enqueue_time = datetime.now(UTC) - timedelta(seconds=1)
        scheduler.enqueue_jobs()
    queued = queue_for(settings, redis_server).get_jobs()
    assert sorted(j.kwargs["target"] for j in queued) == ["production", "reports"]
    run_jobs_for(console)  # each trigger requests its target's backup, which runs too
    from app.store.models import AuditEvent

    with console.app_context():
        done = {e.target_name for e in AuditEvent.query.filter_by(action="backup", outcome="ok", username="scheduler")}
    assert done == {"production", "reports"}


def test_alerts_and_healthz_name_each_target(make_app, targets_env, redis_server, webhook):
    from app.jobs import runtime
    from app.scheduler import check_stale_backups

    url, received = webhook
    app = make_app(**targets_env, ALERT_WEBHOOK_URL=url)
    settings = app.config["SETTINGS"]
    runtime.configure(app)
    with app.app_context():
        assert check_stale_backups(settings.for_target("reports"), redis_server) is True
    run_jobs_for(app)  # the delivery is a job of its own, for the target it names
    runtime.configure(None)
    assert received[0]["title"].startswith("[pgconsole reports · staging] No backup of reports (staging)")
    assert "target: reports (reports)" in received[0]["text"]

    client, _ = make_person(app, "ada", "admin", {"reports": "none"})
    body = client.get("/healthz").get_json()
    assert {"storage:staging", "database:production", "storage", "database"} <= set(body["checks"])
    assert "database:reports" not in body["checks"] and body["checks"]["database"] == "ok"  # over every target
    assert set(body["targets"]) == {"staging", "production"}  # reports is hidden from ada


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("table", "env", "expected"),
    [
        ('environment = "x"\nbucket = "y"', {}, "target 'bad', key 'bucket': unknown key"),
        ('password = "hunter22"', {}, "target 'bad', key 'password': a secret is never written in the file"),
        ('restore_passkey = "open sesame"', {}, "target 'bad', key 'restore_passkey': a secret is never written"),
        ("", {"URL": "postgresql://u:hunter22@h/db"}, "target 'bad', key 'database_url': holds a password"),
        ('password_env = "BAD_DB_PASSWORD"', {}, "target 'bad', key 'password_env': names the environment "
                                                 "variable BAD_DB_PASSWORD, which is not set"),
        ('backup_schedule = "every day"', {}, "target 'bad', key 'backup_schedule': must be a cron expression"),
        ('encryption_recipients = ["age1notakey"]', {}, "target 'bad', key 'encryption_recipients': "),
    ],
)
def test_a_malformed_targets_file_is_refused_with_one_line(tmp_path, table, env, expected):
    from app.config import ConfigError, Settings

    url = env.get("URL", "postgresql://postgres@127.0.0.1:5432/db")
    path = tmp_path / "targets.toml"
    path.write_text(f'[targets.bad]\ndatabase_url = "{url}"\nstorage_url = "file:///tmp/x"\n{table}\n')
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TARGETS_FILE": str(path), "SECRET_KEY": "k"})
    message = str(raised.value)
    assert message.startswith("TARGETS_FILE: " + expected) and "\n" not in message
    assert "hunter22" not in message and "open sesame" not in message


def test_two_targets_whose_backups_would_share_names_are_refused(tmp_path):
    from app.config import ConfigError, Settings

    path = tmp_path / "targets.toml"
    path.write_text("".join(f'[targets.{name}]\nenvironment = "staging"\ndatabase_url = "postgresql://h/app"\n'
                            'storage_url = "s3://bucket/app"\n' for name in ("one", "two")))  # fmt: skip
    with pytest.raises(ConfigError, match="target 'two', key 'app_name': its backups would have the same names as "
                                          "target 'one'"):  # fmt: skip
        Settings.from_env({"TARGETS_FILE": str(path), "SECRET_KEY": "k"})


def test_a_malformed_targets_file_stops_start_up_with_one_line(tmp_path, app_env):
    path = tmp_path / "targets.toml"
    path.write_text('[targets.prod]\ndatabase_url = "postgresql://backup:s3cret@db/app"\nstorage_url = "file:///x"\n')
    env = {**app_env, "TARGETS_FILE": str(path)}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "targets", "list"], cwd=ROOT,
                          env=child_env(env), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == ["pgconsole: configuration error: TARGETS_FILE: target 'prod', key 'database_url': holds a "
                     "password; put it in an environment variable named by password_env"]  # fmt: skip
    assert "s3cret" not in done.stdout + done.stderr


def test_targets_list_names_each_target_and_never_a_secret(console, targets_env, databases):
    env = {**targets_env, "STAGING_DB_PASSWORD": "never-printed-7"}
    path = Path(targets_env["TARGETS_FILE"])
    passkey = 'restore_passkey_env = "STAGING_PASSKEY"'
    path.write_text(path.read_text().replace(passkey, passkey + '\npassword_env = "STAGING_DB_PASSWORD"', 1))
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "targets", "list"], cwd=ROOT,
                          env=child_env(env), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["staging (default)", "production", "reports"]
    staging = lines[0].split("\t")
    assert staging[1:3] == ["staging", f"127.0.0.1:5432/{databases['staging']}"]
    assert staging[3].startswith("s3://") and staging[4] == "no backup yet"
    for secret in ("never-printed-7", *PASSKEYS.values(), targets_env["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in done.stdout + done.stderr


def test_without_a_targets_file_there_is_one_target_and_the_console_is_as_before(app, make_user, runner):
    settings = app.config["SETTINGS"]
    assert [t.name for t in settings.targets] == ["staging"] and settings.default_target == "staging"
    client, _ = make_person(app, "ada", "admin")
    home = client.get("/").get_data(as_text=True)
    assert "<h1>Backups</h1>" in home and "/targets/" not in home and 'class="targets"' not in home
    assert client.get("/targets/staging/").status_code == 200  # the target's own address works too
    listed = client.get("/api/targets", headers=token(app, "ada")).get_json()
    assert [(t["name"], t["environment"]) for t in listed] == [("staging", "staging")]
    out = runner.invoke(args=["targets", "list"]).output
    assert out.startswith("staging (default)\tstaging\t127.0.0.1:5432/") and "test-passkey-0451" not in out


def test_the_overview_marks_a_stale_target(console):
    client, _ = make_person(console, "ada", "admin")
    backed_up(console, client, token(console, "ada"), "production")
    page = client.get("/").get_data(as_text=True)
    rows = dict(re.findall(r'<tr class="target-row([^"]*)" data-target="(\w+)"', page)[i][::-1] for i in range(3))
    assert rows == {"staging": " stale", "production": "", "reports": " stale"}
    assert "backup <strong>ok</strong>" in page  # production's last job
    assert 'data-label="Newest backup"' in page and 'data-label="Last job"' in page  # each card says what is what
    assert client.get("/targets/production/").status_code == 200


def test_a_targets_list_has_tabs_on_its_own_address_and_says_who_made_each_backup(console):
    """staging and production share a bucket: production's list has both, and the console store knows both."""
    from tests.web.test_backups_list import cell, tabs_of

    client, _ = make_person(console, "ada", "admin")
    headers = token(console, "ada")
    ours, theirs = backed_up(console, client, headers, "production"), backed_up(console, client, headers, "staging")
    page = client.get("/targets/production/").get_data(as_text=True)
    assert tabs_of(page) == [("All", "/targets/production/", True),
                             ("production", "/targets/production/?environment=production", False),
                             ("staging", "/targets/production/?environment=staging", False)]  # fmt: skip
    assert cell(page, ours, "Made by") == cell(page, theirs, "Made by") == "ada · manual"
    only = client.get("/targets/production/?environment=staging").get_data(as_text=True)
    assert theirs in only and ours not in only


# --------------------------------------------------------------------------- in the browser


@pytest.mark.browser
def test_the_overview_in_the_browser_shows_which_target_is_stale(page, processes, targets_env):
    """gunicorn and a worker as real processes; production is backed up from the CLI, the others never were."""
    from tests.browser.test_browser import sign_in
    from tests.helpers import PASSWORD

    def flask(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, input=stdin,
                              env=child_env(targets_env), capture_output=True, text=True, timeout=180)  # fmt: skip

    assert flask("users", "create", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD).returncode == 0
    base = processes.web(targets_env)
    processes.worker(targets_env)
    made = flask("backup", "create", "--target", "production", "--wait")
    assert made.returncode == 0 and "Backup finished: pharmatracker-production-on-" in made.stdout, made.stderr

    sign_in(page, base)
    page.get_by_role("heading", name="Targets").wait_for()
    rows = page.locator("table.targets tbody tr")
    assert rows.count() == 3
    production, staging = rows.filter(has_text="production"), page.locator('tr[data-target="staging"]')
    assert "pharmatracker-production-on-" in production.inner_text()
    assert "backup ok" in production.inner_text() and "stale" not in production.inner_text()
    assert "stale" in staging.inner_text() and "none yet" in staging.inner_text()
    # It stands out: a stale row is painted differently from a healthy one.
    background = "el => getComputedStyle(el).backgroundColor"
    assert staging.evaluate(background) != production.evaluate(background)

    page.get_by_role("link", name="production", exact=True).click()
    page.get_by_role("heading", name="Backups").wait_for()
    assert page.url == base + "/targets/production/"
    assert page.locator("#target-name").inner_text() == "production"
    assert "pharmatracker-production-on-" in page.locator("table.backups tbody tr").first.inner_text()


def test_metrics_have_one_series_per_target(make_app, targets_env):
    from prometheus_client.parser import text_string_to_metric_families

    secret = "metrics-token-for-the-targets-test"
    app = make_app(**targets_env, METRICS_TOKEN=secret)
    client, _ = make_person(app, "ada", "admin")
    backed_up(app, client, token(app, "ada"), "reports")
    text = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {secret}"}).get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    stored = {s.labels["target"]: s.value for s in families["pgconsole_backups_stored"].samples}
    assert stored == {"staging": 0, "production": 0, "reports": 1}
    up = {(s.labels["target"], s.labels["component"]) for s in families["pgconsole_up"].samples if s.value == 1}
    assert {("reports", "storage"), ("production", "database"), ("staging", "storage")} <= up
    assert text.count("# HELP pgconsole_backups_stored ") == 1  # one family, a series per target


def test_retention_is_per_target_and_environment(make_app, targets_env):
    path = Path(targets_env["TARGETS_FILE"])
    production = 'restore_passkey_env = "PRODUCTION_PASSKEY"'
    path.write_text(path.read_text().replace(production, production + "\nmax_backup_files = 1", 1))
    app = make_app(**targets_env)
    client, _ = make_person(app, "ada", "admin")
    headers = token(app, "ada")
    staging = backed_up(app, client, headers, "staging")
    first = backed_up(app, client, headers, "production")
    second = backed_up(app, client, headers, "production")
    listed = {b["filename"] for b in client.get("/api/targets/production/backups", headers=headers).get_json()}
    assert listed == {staging, second}  # production keeps 1 of its own; staging's, in the same bucket, stays
    assert first not in listed


def test_each_target_encrypts_to_its_own_recipients(make_app, targets_env, databases, tmp_path):
    """Production's backups are age files for production's key; staging (no recipients) stays plain."""
    from tests.adapters.test_encryption import age_key

    key, public = age_key(tmp_path, "production-key")
    path = Path(targets_env["TARGETS_FILE"])
    path.write_text(path.read_text().replace(
        'restore_passkey_env = "PRODUCTION_PASSKEY"',
        f'restore_passkey_env = "PRODUCTION_PASSKEY"\nencryption_recipients = ["{public}"]'))  # fmt: skip
    app = make_app(**targets_env, BACKUP_ENCRYPTION_IDENTITY_FILE=str(key))
    client, _ = make_person(app, "ada", "admin")
    headers = token(app, "ada")
    production, staging = (backed_up(app, client, headers, name) for name in ("production", "staging"))
    assert production.endswith(".dump.age") and staging.endswith(".dump")
    from app.services.clients import storage_for

    storage = storage_for(app.config["SETTINGS"].for_target("production"))
    stored = storage.get_bytes(production)
    assert not stored.startswith(b"PGDMP")
    plain = subprocess.run(["age", "-d", "-i", str(key)], input=stored, capture_output=True, check=True).stdout
    assert plain.startswith(b"PGDMP") and storage.get_bytes(staging).startswith(b"PGDMP")

    before = fingerprint(databases["production"])
    delete_customers(databases["production"], 10)
    answer = client.post("/api/targets/production/restore", headers=headers,
                         json={"filename": production, "passkey": PASSKEYS["production"]})  # fmt: skip
    assert answer.status_code == 202, answer.get_json()
    run_jobs_for(app)
    assert job_of(app, answer.get_json()["job_id"])["status"] == "finished"
    assert fingerprint(databases["production"]) == before

