"""A page per backup (`/backups/<filename>`), for each role that may see it, and a double click on
"Create backup" that lands on the job it started."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from app.domain import catalog
from tests.config import targets
from tests.config.targets import make_person
from tests.helpers import audit_rows, job_of, post, run_jobs_for, signed_in, storage_of
from tests.store.test_history import queued

# --------------------------------------------------------------------------- a double submit


@pytest.mark.parametrize("interval", ["60", "0"], ids=["refused-by-the-interval", "refused-by-the-lock"])
def test_a_second_click_on_create_backup_lands_on_the_job_the_first_started(make_app, make_user, interval):
    app = make_app(BACKUP_MIN_INTERVAL_SECONDS=interval)
    operator, auth = signed_in(app, make_user, "operator", "olga")
    first = post(operator, auth, "/backups")
    second = post(operator, auth, "/backups")
    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"] and first.headers["Location"].startswith("/jobs/")
    page = operator.get(second.headers["Location"]).text
    assert "Your backup is already running." in page and "flash-error" not in page
    assert queued(app) == 1
    assert [e.outcome for e in audit_rows(app, "backup")] == ["requested", "refused"]


def test_the_api_says_which_of_your_backups_a_second_request_ran_into(make_app, make_user, token_for):
    app = make_app(BACKUP_MIN_INTERVAL_SECONDS="60")
    make_user("olga", "operator")
    api, headers = app.test_client(), token_for("olga")
    first = api.post("/api/setting/backup", headers=headers).get_json()
    second = api.post("/api/setting/backup", headers=headers)
    body = second.get_json()
    assert second.status_code == 429 and body["error"]  # the refusal, said as before
    assert body["job_id"] == first["job_id"] and body["status_url"] == first["status_url"]

    make_user("otto", "operator")  # someone else's backup is not theirs to be led to
    other = api.post("/api/setting/backup", headers=token_for("otto"))
    assert other.status_code == 429 and "job_id" not in other.get_json()
    run_jobs_for(app)


# --------------------------------------------------------------------------- the page, per role


def text_of(page: str, element_id: str) -> str:
    """The words of the element with this id (tags dropped, spaces collapsed)."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:dd|p|code|section)>', page, re.S)
    assert found, element_id
    return " ".join(re.sub(r"<[^>]+>", " ", found[1]).split())


@pytest.fixture
def made_backup(app, make_user):
    """A real backup made by olga from the page, restore-tested and pinned with a note: its file name."""
    operator, auth = signed_in(app, make_user, "operator", "olga")
    job_url = post(operator, auth, "/backups").headers["Location"]
    run_jobs_for(app)
    filename = job_of(app, job_url.split("/")[2].split("?")[0])["result"]["filename"]
    assert post(operator, auth, f"/backups/{filename}/verify").status_code == 303
    run_jobs_for(app)
    pinned = post(operator, auth, f"/backups/{filename}/pin", {"note": "before the migration",
                                                                "next": f"/backups/{filename}"})  # fmt: skip
    assert pinned.headers["Location"] == f"/backups/{filename}"  # back to the page it was pinned on
    return filename


def test_a_viewer_sees_everything_known_and_no_action(app, make_user, made_backup):
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    list_page = viewer.get("/").text
    assert f'href="/backups/{made_backup}"' in list_page  # the row leads to its page
    answer = viewer.get(f"/backups/{made_backup}")
    assert answer.status_code == 200
    page = answer.text
    assert text_of(page, "backup-filename") == made_backup
    assert text_of(page, "fact-made-by").startswith("olga (by hand)")
    assert re.fullmatch(r"[0-9a-f]{64}", text_of(page, "fact-sha256"))
    assert re.match(r"\d+(\.\d)? (B|KB) \([\d,]+ bytes\)", text_of(page, "fact-size"))
    assert re.search(r"\d+\.\d+", text_of(page, "fact-pg-dump")) and re.search(r"\d+", text_of(page, "fact-server"))
    assert text_of(page, "fact-compression") not in ("", "— not known")
    assert text_of(page, "fact-trust").startswith("Trusted")
    assert text_of(page, "fact-encryption") == "Not encrypted."
    assert "Proven restorable" in page and re.search(r"restored \d+ tables? with [\d,]+ rows?", page)
    assert "<code>public.orders</code>" in page or "orders" in page
    assert "Note: before the migration" in page
    assert re.search(r'href="/jobs/[0-9a-f]{32}">Restore test', page)  # the restore test that used it
    for action in ("/download", "/manifest", "/verify", "/pin", "/unpin", "/restore"):
        assert f"/backups/{made_backup}{action}" not in page
    assert viewer.get(f"/backups/{made_backup}/manifest").status_code == 403


def test_an_operator_may_download_verify_and_pin_and_an_admin_also_restore_and_unpin(app, make_user, made_backup):
    operator, _ = signed_in(app, make_user, "operator", "otto")
    page = operator.get(f"/backups/{made_backup}").text
    for action in ("/download", "/manifest", "/verify"):
        assert f"/backups/{made_backup}{action}" in page
    assert f"/backups/{made_backup}/restore" not in page and f"/backups/{made_backup}/unpin" not in page
    manifest = operator.get(f"/backups/{made_backup}/manifest")
    assert manifest.status_code == 200 and manifest.get_json()["filename"] == made_backup
    assert "attachment" in manifest.headers["Content-Disposition"]

    admin, _ = signed_in(app, make_user, "admin", "ada")
    page = admin.get(f"/backups/{made_backup}").text
    assert f"/backups/{made_backup}/restore" in page and f"/backups/{made_backup}/unpin" in page


@pytest.mark.web_only
@pytest.mark.parametrize(
    "asked",
    ["..%2F..%2Fetc%2Fpasswd", "../../etc/passwd.dump", "nothing-here-on-2024-01-01-at-01-00-00-AM-IST.dump",
     "notes.txt", "{real}.json", "{real}.pin"],
)  # fmt: skip
def test_an_unknown_or_forged_name_is_a_404_that_says_so(app, make_user, asked):
    from tests.helpers import put_signed_backup
    from tests.web.test_pages_cost import names

    real = names(1)[0]
    put_signed_backup(app, real)
    storage_of(app).put_bytes("notes.txt", b"not a backup")
    catalog.pin(storage_of(app), real, "x", "olga", datetime.now(UTC))
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    answer = viewer.get("/backups/" + asked.format(real=real))
    assert answer.status_code == 404
    assert "There is no backup called" in answer.text and "root:" not in answer.text


# --------------------------------------------------------------------------- a target the user may not see

console, databases, targets_env = targets.console, targets.databases, targets.targets_env


def test_a_backup_of_a_target_the_user_may_not_see_is_a_404(console):
    """staging and production share a bucket: staging's page must not show production's backup to who may not see it."""
    from tests.helpers import put_signed_backup
    from tests.web.test_pages_cost import names

    theirs = names(1, "production")[0]
    put_signed_backup(console, theirs)
    admin, _ = make_person(console, "ada", "admin")
    assert admin.get(f"/targets/staging/backups/{theirs}").status_code == 200
    assert admin.get(f"/targets/production/backups/{theirs}").status_code == 200

    dev, _ = make_person(console, "dev", "viewer", {"production": "none"})
    unknown = dev.get(f"/targets/staging/backups/{names(1, 'production', start_days=9)[0]}")
    for url in (f"/targets/staging/backups/{theirs}", f"/backups/{theirs}", f"/targets/production/backups/{theirs}"):
        answer = dev.get(url)
        assert answer.status_code == 404, url
        assert theirs not in answer.text.replace(f"“{theirs}”", "") and "sha256" not in answer.text
    assert unknown.status_code == 404


def test_the_api_gives_the_page_as_json_to_a_viewer(app, make_user, token_for, made_backup):
    make_user("vera", "viewer")
    api, headers = app.test_client(), token_for("vera")
    answer = api.get(f"/api/setting/backups/{made_backup}", headers=headers)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["filename"] == made_backup and body["madeBy"] == "olga" and body["kind"] == "manual"
    assert body["trusted"] is True and len(body["sha256"]) == 64 and body["pinNote"] == "before the migration"
    assert body["verification"]["proven"] is True and sum(body["verification"]["rows"].values()) > 0
    assert "role_definitions" not in answer.text
    missing = api.get("/api/setting/backups/../../etc/passwd.dump", headers=headers)
    assert missing.status_code == 404 and "There is no backup called" in missing.get_json()["error"]
