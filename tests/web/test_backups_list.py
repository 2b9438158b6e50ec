"""The backups list: environment tabs, and rows that lead with
when a backup was made, by whom, manually or on schedule, and how long it took.

Through the Flask test client on real Redis, PostgreSQL and stores; the browser side is in
tests/browser/test_list_browser.py.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from app.domain.catalog import write_manifest
from tests.helpers import post, run_jobs_for, signed_in, storage_of
from tests.web.test_pages_cost import count_requests, listed_rows, names


def tabs_of(page: str) -> list[tuple[str, str, bool]]:
    """(label, href, current) for each environment tab."""
    nav = re.search(r'<nav class="tabs" aria-label="Environments" id="environment-tabs">(.*?)</nav>', page, re.S)
    assert nav, page
    found = re.findall(r'<a href="([^"]+)"( aria-current="page")?>(?:<span[^>]*></span>)?([^<]+)</a>', nav[1])
    return [(label, href.replace("&amp;", "&"), bool(current)) for href, current, label in found]


def cell(page: str, filename: str, label: str) -> str:
    """The text of one cell (by its data-label) in the row of `filename`."""
    row = next(r for r in re.findall(r"<tr>.*?</tr>", page, re.S) if f'<td class="filename">{filename}' in r)
    found = re.search(rf'<td data-label="{label}"[^>]*>(.*?)</td>', row, re.S)
    assert found, row
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found[1])).strip()


@pytest.fixture
def mixed(app):
    """Backups of three environments in the store, newest first: 3 staging, 2 production, 1 dev."""
    staging, production, dev = names(3), names(2, "production", start_days=2), names(1, "dev", start_days=3)
    for name in (*staging, *production, *dev):
        storage_of(app).put_bytes(name, b"dump")
    return {"staging": staging, "production": production, "dev": dev}


@pytest.mark.web_only
def test_tabs_name_every_environment_and_filter_the_list(app, make_user, mixed):
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    everything = viewer.get("/").text
    assert tabs_of(everything) == [
        ("All", "/", True),
        ("dev", "/?environment=dev", False),
        ("production", "/?environment=production", False),
        ("staging", "/?environment=staging", False),
    ]
    assert listed_rows(everything) == [*mixed["staging"], *mixed["production"], *mixed["dev"]]

    production = viewer.get("/?environment=production")
    assert production.status_code == 200
    assert listed_rows(production.text) == mixed["production"]
    assert [current for _, _, current in tabs_of(production.text)] == [False, False, True, False]
    assert "The backups of <strong>production</strong>, newest first." in production.text
    assert '<caption class="sr-only">Backups of production, newest first</caption>' in production.text


@pytest.mark.web_only
def test_paging_keeps_the_environment(app, make_user):
    staging, production = names(53), names(2, "production", start_days=5)
    for name in (*staging, *production):
        storage_of(app).put_bytes(name, b"dump")
    viewer, _ = signed_in(app, make_user, "viewer", "vera")

    first = viewer.get("/?environment=staging").text
    assert listed_rows(first) == staging[:50] and "Backups 1–50 of 53 (page 1 of 2)" in first
    assert '<a rel="next" href="/?page=2&amp;environment=staging">' in first
    second = viewer.get("/?page=2&environment=staging").text
    assert listed_rows(second) == staging[50:]
    assert '<a rel="prev" href="/?environment=staging">' in second
    assert viewer.get("/?environment=production&page=2").status_code == 404  # production has one page


@pytest.mark.web_only
@pytest.mark.parametrize("asked", ["nowhere", "Staging", "%00", "<script>alert(1)</script>", "x" * 5000])
def test_an_unknown_environment_is_an_empty_list_that_says_so(app, make_user, mixed, asked):
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    response = viewer.get("/", query_string={"environment": asked})
    assert response.status_code == 200
    page = response.text
    assert listed_rows(page) == [] and "<script>alert" not in page
    notice = re.search(r'<p class="flash flash-warning" id="no-such-environment">(.*?)</p>', page, re.S)
    assert notice and "No backup in the store is from an environment called" in notice[1]
    assert '<a href="/">Show all backups</a>' in notice[1]
    assert [current for _, _, current in tabs_of(page)] == [False, False, False, False]  # no tab is this one
    assert len(storage_of(app).list_objects()) == 6  # bad input changed nothing


@pytest.mark.web_only
def test_the_empty_string_is_all_and_an_empty_store_has_no_tabs(app, make_user):
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get("/?environment=").text
    assert 'id="environment-tabs"' not in page and "No backups yet." in page


def olga_and_the_scheduler_back_up(app, make_user):
    """A backup olga makes from the page, then one the scheduler makes, both run to their end; olga's client."""
    from app.jobs import runtime
    from app.scheduler import scheduled_backup

    operator, auth = signed_in(app, make_user, "operator", "olga")
    assert post(operator, auth, "/backups").status_code == 303
    run_jobs_for(app)
    with app.app_context():
        runtime.configure(app)
        assert scheduled_backup() is not None
    run_jobs_for(app)
    return operator


def test_rows_say_who_made_a_backup_manual_or_scheduled_and_how_long_it_took(app, make_user, run_jobs):
    olga_and_the_scheduler_back_up(app, make_user)
    foreign = names(1, "production", start_days=2)[0]
    storage_of(app).put_bytes(foreign, b"dump")

    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get("/").text
    scheduled, manual, other = listed_rows(page)
    assert other == foreign
    assert cell(page, scheduled, "Made by") == "scheduler · scheduled"
    assert cell(page, manual, "Made by") == "olga · manual"
    for made in (scheduled, manual):
        assert re.fullmatch(r"\d+(\.\d)? s", cell(page, made, "Duration")), cell(page, made, "Duration")
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [AP]M IST (just now|\d+ min ago)", cell(page, made, "Created")
        )
    # Made by another console, whose manifest this process never read: unknown, said as such.
    assert cell(page, foreign, "Made by") == "— not known" and cell(page, foreign, "Duration") == "— not known"
    assert cell(page, foreign, "Restore test") == "— not yet"


@pytest.fixture
def seaweed_app(make_app, app_env, seaweedfs_bucket):
    return make_app(**{**app_env, **seaweedfs_bucket.env})


@pytest.mark.web_only
def test_another_consoles_backup_shows_its_maker_only_from_a_manifest_already_read(seaweed_app, make_user):
    """No S3 request per row: the manifest is used once something else read it (the restore page)."""
    app = seaweed_app
    ours = names(2)
    foreign = names(1, "production", start_days=2)[0]
    storage = storage_of(app)
    for name in (*ours, foreign):
        storage.put_bytes(name, b"dump")
    write_manifest(storage, foreign, {"requested_by": "pat", "started_at": "2026-01-01T10:00:00+00:00",
                                      "finished_at": "2026-01-01T10:01:05+00:00", "size": 4})  # fmt: skip
    admin, _ = signed_in(app, make_user, "admin", "ada")
    sent = count_requests(app)
    queries = []
    with app.app_context():
        from app.extensions import db

        engine = db.engine

    def seen(_conn, _cursor, statement, *_):
        queries.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        before = admin.get("/").text
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert cell(before, foreign, "Made by") == "— not known"
    assert sent[("GET", "other")] == 0  # not one manifest read for the rows
    assert len([q for q in queries if "job_records.filename IN" in q]) == 1  # one query for all rows

    # The restore page reads (and keeps) its manifest; one without a sha256, hand-made, does not break it.
    assert admin.get(f"/backups/{foreign}/restore").status_code == 200
    sent.clear()
    after = admin.get("/").text
    assert cell(after, foreign, "Made by") == "pat · manual" and cell(after, foreign, "Duration") == "1 min 5 s"
    assert sent[("GET", "other")] == 0


@pytest.mark.web_only
def test_a_manifest_with_nonsense_times_gives_no_duration():
    from app.domain.trends import manifest_seconds

    assert (
        manifest_seconds({"started_at": "2026-01-01T10:00:00+00:00", "finished_at": "2026-01-01T10:00:09+00:00"}) == 9
    )
    for bad in ({}, {"started_at": 5, "finished_at": "x"}, {"started_at": "2026-01-02T00:00:00+00:00",
                                                             "finished_at": "2026-01-01T00:00:00+00:00"}):  # fmt: skip
        assert manifest_seconds(bad) is None


# --------------------------------------------------------------------------- search, filters, kinds, storage used


def test_safety_backups_are_labelled_and_the_list_filters_by_kind_and_person(app, make_user, token_for, run_jobs):
    """Real backups: olga's by hand, the scheduler's, and the safety backup ada's restore made before its swap."""
    from tests.helpers import restore_through_api

    operator = olga_and_the_scheduler_back_up(app, make_user)
    scheduled, manual = listed_rows(operator.get("/").text)
    make_user("ada", "admin")
    restored = restore_through_api(app, app.test_client(), token_for("ada"), manual)
    safety = restored["result"]["safety_backup"]
    foreign = names(1, "production", start_days=2)[0]
    storage_of(app).put_bytes(foreign, b"dump")

    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    page = viewer.get("/").text
    assert listed_rows(page) == [safety, scheduled, manual, foreign]
    assert cell(page, safety, "Made by") == "ada · safety"
    assert cell(page, manual, "Made by") == "olga · manual"
    assert re.search(r'<span class="mark kind kind-safety">safety</span>', page)
    assert re.search(r'<option value="olga">olga</option>', page) and '<option value="scheduler">' in page

    def rows(**query) -> list[str]:
        answer = viewer.get("/", query_string=query)
        assert answer.status_code == 200
        return listed_rows(answer.text)

    assert rows(kind="safety") == [safety]
    assert rows(kind="scheduled") == [scheduled]
    assert rows(kind="manual") == [manual]
    assert rows(by="olga") == [manual] and rows(by="ada") == [safety]
    assert rows(q="PRODUCTION") == [foreign] and rows(q="scheduler") == [scheduled]
    assert rows(q="olga", kind="scheduled") == []
    assert rows(kind="nonsense") == [safety, scheduled, manual, foreign]  # an unknown kind is no filter
    assert rows(environment="production", q="pharma") == [foreign]
    nothing = viewer.get("/?by=nobody").text
    assert "No backup matches this search and these filters." in nothing and 'id="clear-filters"' in nothing
    safety_page = viewer.get(f"/backups/{safety}").text
    assert "a safety backup a restore made of the database it replaced, before the swap" in safety_page
    assert re.search(r'href="/jobs/[0-9a-f]{32}">the restore</a>', safety_page)


@pytest.mark.web_only
def test_filters_survive_paging_and_the_storage_used_is_summed_per_environment(app, make_user):
    staging, production = names(53), names(2, "production", start_days=5)
    storage = storage_of(app)
    for name in staging:
        storage.put_bytes(name, b"d" * 1000)
    for name in production:
        storage.put_bytes(name, b"p" * 3000)
    viewer, _ = signed_in(app, make_user, "viewer", "vera")
    first = viewer.get("/?q=staging").text
    assert listed_rows(first) == staging[:50]
    assert '<a rel="next" href="/?page=2&amp;q=staging">' in first
    second = viewer.get("/?page=2&q=staging").text
    assert listed_rows(second) == staging[50:] and '<a rel="prev" href="/?q=staging">' in second
    assert 'value="staging"' in second  # the search box keeps what was asked
    used = " ".join(re.sub(r"<[^>]+>", " ", re.search(r'id="storage-used">(.*?)</p>', first, re.S)[1]).split())
    assert used == "Storage used: staging 51.8 KB (53 backups) · production 5.9 KB (2 backups) · in all 57.6 KB"
