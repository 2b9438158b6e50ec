"""Issue 29, H1, M5 and L4: what someone who can write to the backup folder or bucket must not achieve.

H1: a listed backup swapped for a link (to a secret, to /proc/self/environ, to a good copy elsewhere)
is never read: not by a download, not by a verify or restore job. M5: a manifest or pin note that is
huge or nested 200,000 deep marks its backup untrusted and never takes a page down. L4: what the
console creates (the SQLite store, its folder, quickstart's secrets) is for its owner only.
The folder store's own rules (links, FIFOs, sizes, modes) are in tests/test_storage.py.
"""

from __future__ import annotations

import json

import pytest

from app.domain import provenance
from tests.helpers import old_backups, signed_in, storage_of

MiB = 1024 * 1024


# --------------------------------------------------------------------------- M5: hostile sidecars


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_huge_and_deeply_nested_sidecars_mark_a_backup_untrusted_and_break_no_page(
    where, request, make_app, make_user, token_for
):
    app = make_app(**(request.getfixturevalue("s3_server") if where == "s3" else {}))
    deep, huge, pinned = old_backups(app, [1, 2, 3])
    storage = storage_of(app)
    storage.put_bytes(deep + ".json", b"[" * 200_000)  # json.loads: RecursionError
    padding = "x" * (10 * MiB)
    storage.put_bytes(huge + ".json", json.dumps({"filename": huge, "size": 3, "padding": padding,
                                                  "signature": "hmac-sha256:" + "0" * 64}).encode())  # fmt: skip
    note = "N" * (10 * MiB)
    storage.put_bytes(pinned + ".pin", json.dumps({"note": note, "pinned_by": "mallory"}).encode())
    make_user("vic", "viewer")
    admin, _ = signed_in(app, make_user, "admin", "ada")

    for client in (admin, signed_in(app, make_user, "viewer", "vera")[0]):
        home = client.get("/")
        page = home.get_data(as_text=True)
        assert home.status_code == 200, page[-2000:]
        assert deep in page and huge in page and pinned in page
        assert len(page) < MiB and "N" * 100 not in page  # the note was not read past the cap
    listed = app.test_client().get("/api/setting/backups", headers=token_for("vic"))
    assert listed.status_code == 200
    assert {b["filename"]: b["hasManifest"] for b in listed.get_json()} == {deep: True, huge: True, pinned: False}

    for name in (deep, huge):
        response = admin.get(f"/backups/{name}/restore")
        page = response.get_data(as_text=True)
        assert response.status_code == 200, page[-2000:]
        assert '<span class="mark">untrusted</span>' in page
        assert provenance.UNREADABLE_MANIFEST in page and provenance.UNTRUSTED_WARNING in page
    pinned_page = admin.get(f"/backups/{pinned}/restore")
    assert pinned_page.status_code == 200 and "it has no manifest" in pinned_page.get_data(as_text=True)
