"""Roles on the pages and on the API: what a viewer, an operator and an admin may each do."""

from __future__ import annotations


def test_roles_on_pages(client, auth, make_user):
    make_user("viewer", "viewer")
    auth.login("viewer")
    page = client.get("/").get_data(as_text=True)
    assert "Create backup" not in page
    token = auth.csrf_token("/")
    assert client.post("/backups", data={"csrf_token": token}).status_code == 403


def test_roles_on_the_api(client, make_user, token_for):
    make_user("viewer", "viewer")
    headers = token_for("viewer")
    assert client.get("/api/setting/backups").status_code == 401
    assert client.get("/api/setting/backups", headers={"Authorization": "Bearer pgc_wrong"}).status_code == 401
    assert client.get("/api/setting/backups", headers=headers).status_code == 200
    refused = client.post("/api/setting/backup", headers=headers)
    assert refused.status_code == 403 and "operator" in refused.get_json()["error"]
