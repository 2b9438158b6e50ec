"""The users and tokens commands: people and API tokens made from the shell, stored hashed."""

from __future__ import annotations


def test_cli_users_and_tokens(app, runner):
    result = runner.invoke(
        args=["users", "create", "ops", "--role", "operator", "--password-stdin"], input="a long enough password\n"
    )
    assert result.exit_code == 0, result.output
    duplicate = runner.invoke(args=["users", "create", "ops", "--role", "operator", "--password-stdin"], input="x" * 12)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    short = runner.invoke(args=["users", "create", "new", "--role", "admin", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 10" in short.output
    bad_role = runner.invoke(args=["users", "create", "new", "--role", "root", "--password-stdin"], input="x" * 12)
    assert bad_role.exit_code != 0 and "root" in bad_role.output
    token = runner.invoke(args=["tokens", "create", "ops"])
    assert token.exit_code == 0 and token.output.startswith("pgc_")
    missing = runner.invoke(args=["tokens", "create", "nobody"])
    assert missing.exit_code != 0 and "no user named" in missing.output

    client = app.test_client()
    plain = token.output.strip()
    assert client.get("/api/setting/backups", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    with app.app_context():
        from app.store.models import ApiToken, User

        assert ApiToken.query.one().token_hash != plain
        assert User.query.filter_by(username="ops").one().password_hash != "a long enough password"
