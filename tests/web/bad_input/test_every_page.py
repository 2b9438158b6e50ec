"""Bad input on every page: unknown query arguments and forms posted without their fields never give a 500."""

from __future__ import annotations

from tests.helpers import backup_run_in_process, signed_in

# names that clash with url_for's own arguments, odd values for the known ones, and plain unknowns
ODD_QUERY = "endpoint=x&_external=1&_anchor=x&_method=POST&_scheme=javascript&values=1&page=abc&next=//evil&zzz=1"


def test_unknown_query_arguments_on_every_page_never_give_a_500(app, make_user):
    filename = backup_run_in_process(app)["result"]["filename"]
    pages = ["/", "/users", "/account", "/audit", "/audit.csv", "/settings", "/retention", "/healthz",
             "/api/setting/backups", "/jobs/no-such-job", "/api/jobs/no-such-job", f"/backups/{filename}/download",
             f"/backups/{filename}/restore", "/set-password/no-such-link"]  # fmt: skip
    anonymous = app.test_client()
    assert anonymous.get(f"/login?{ODD_QUERY}").status_code == 200
    client, _ = signed_in(app, make_user, "admin", "ada")
    for path in pages:
        status = client.get(f"{path}?{ODD_QUERY}").status_code
        assert status < 500, (path, status)
        assert anonymous.get(f"{path}?{ODD_QUERY}").status_code < 500, path


def test_every_form_posted_with_none_of_its_fields_never_gives_a_500(app, make_user):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "admin", "ada")
    other = make_user("bob", "viewer")  # the user forms act on someone else, so ada stays signed in
    token = auth.csrf_token("/")
    posts = [r for r in app.url_map.iter_rules() if "POST" in r.methods and not r.rule.startswith("/api/")]
    assert len(posts) >= 8
    for rule in sorted(posts, key=lambda r: r.rule in ("/logout", "/account/sign-out-everywhere")):  # sign-outs last
        path = rule.rule.replace("<path:filename>", filename).replace("<job_id>", "no-such-job")
        path = path.replace("<secret>", "no-such-link").replace("<int:user_id>", str(other))
        path = path.replace("<int:token_id>", "999999")
        status = client.post(path, data={"csrf_token": token}).status_code
        assert status < 500, (rule.rule, status)


