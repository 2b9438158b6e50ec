"""Pins and GFS retention through the console: a pinned backup survives; the preview names what goes."""

from __future__ import annotations

import json
import re

from tests.helpers import backup_run_in_process, old_backups, signed_in, storage_of


def test_a_pinned_backup_survives_retention(make_app, make_user):
    app = make_app(MAX_BACKUP_FILES="1")
    names = old_backups(app, [3, 2, 1])
    client, auth = signed_in(app, make_user)
    pinned = client.post(f"/backups/{names[0]}/pin",
                         data={"note": "before the v2.3 migration", "csrf_token": auth.csrf_token("/")})  # fmt: skip
    assert pinned.status_code == 303
    assert "pinned: before the v2.3 migration" in client.get("/").get_data(as_text=True)
    result = backup_run_in_process(app)["result"]
    assert sorted(result["deleted"]) == sorted(names[1:])
    kept = {o.name for o in storage_of(app).list_objects()}
    assert {names[0], names[0] + ".pin", result["filename"]} <= kept
    pin = json.loads(storage_of(app).get_bytes(names[0] + ".pin"))
    assert pin["note"] == "before the v2.3 migration" and pin["pinned_by"] == "olga"


def test_the_gfs_preview_names_exactly_what_retention_then_deletes(make_app, make_user):
    app = make_app(MAX_BACKUP_FILES="1", RETENTION_DAILY="3", RETENTION_MONTHLY="1")
    names = old_backups(app, [0.5, 1, 1.2, 2, 4, 6, 40, 70])
    client, _ = signed_in(app, make_user)
    page = client.get("/retention").get_data(as_text=True)
    previewed = set(re.findall(r'<td class="filename">([^<]+)</td>\s*<td>[^<]*</td>\s*<td>delete</td>', page))
    assert previewed and previewed < set(names)
    assert "newest of day" in page and "newest of month" in page
    deleted = set(backup_run_in_process(app)["result"]["deleted"])
    assert deleted == previewed


def test_a_pin_without_a_note_field_pins_without_a_note(app, make_user):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "operator", "olga")
    answer = client.post(f"/backups/{filename}/pin", data={"csrf_token": auth.csrf_token("/")})
    assert answer.status_code == 303
    assert storage_of(app).stat(f"{filename}.pin") is not None  # the pin's sidecar, beside the backup
