"""Several databases in one console: targets from TARGETS_FILE, each backed up and restored on its own,
with per-target roles and tokens; the single-target routes act on the default target.

Three targets on three real databases: staging and production share one moto bucket (and one
prefix, so each lists the other's backups), reports keeps its backups in a folder.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.config.targets import PASSKEYS, backed_up, delete_customers, make_person, token
from tests.helpers import AuthActions, job_of, log_in, run_jobs_for
from tests.support import ROOT
from tests.support.databases import table_fingerprint as fingerprint
from tests.support.processes import child_env

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
    assert wrong.status_code == 403 and "Wrong passkey" in wrong.get_data(as_text=True)
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


# --------------------------------------------------------------------------- configuration


# --------------------------------------------------------------------------- in the browser


