"""Limits on guessing: failures slow a username down but never lock it; restore passkeys are limited console-wide."""

from __future__ import annotations

import time

from tests.helpers import backup_run_in_process
from tests.web.test_proxies import sign_in_from


def timed_sign_in(client, address: str, username: str, password: str) -> float:
    started = time.perf_counter()
    answer = sign_in_from(client, address, username, password)
    elapsed = time.perf_counter() - started
    assert answer.status_code in (302, 401), answer.status_code
    return elapsed


def test_many_failures_for_one_username_slow_it_down_but_never_lock_it(make_app, make_user):
    from app.web.auth.views import SLOWDOWN_MAX_SECONDS, USERNAME_FREE_FAILURES, slowdown_seconds
    from tests.helpers import PASSWORD

    app = make_app(TRUSTED_PROXIES="1")
    make_user("ada", "admin")
    attacker = app.test_client()
    # from a new address each time, as a botnet would: only the username's slow-down applies
    took = [timed_sign_in(attacker, f"203.0.113.{i}", "ada", "guess") for i in range(USERNAME_FREE_FAILURES + 2)]
    assert took[-1] >= 1.0 > took[0]  # the 7th failure waited 1 s; the first did not
    real = timed_sign_in(app.test_client(), "198.51.100.7", "ada", PASSWORD)
    assert 2.0 <= real < SLOWDOWN_MAX_SECONDS + 2  # slowed (2 s), then in
    assert timed_sign_in(app.test_client(), "198.51.100.7", "ada", PASSWORD) < 1.0  # a success clears it
    assert slowdown_seconds(10**9) == SLOWDOWN_MAX_SECONDS  # capped however long the attack goes on


def test_an_unknown_username_costs_the_same_hash_check_as_a_wrong_password(make_app, make_user):
    from statistics import median

    app = make_app()
    make_user("ada", "admin")
    client = app.test_client()
    timed_sign_in(client, "192.0.2.1", "warm-up", "x")  # the first unknown name makes the dummy hash once
    # 5 of each stays within a username's free failures and the address's limit: nothing is slowed down
    known = median(timed_sign_in(client, "192.0.2.1", "ada", f"wrong{i}") for i in range(5))
    unknown = median(timed_sign_in(client, "192.0.2.1", f"nobody{i}", "wrong") for i in range(5))
    assert unknown >= 0.5 * known, (unknown, known)  # without the dummy hash: about 0.05 x


def test_wrong_passkeys_are_limited_for_the_whole_console_not_only_per_admin(app, make_user, token_for):
    from app.operations import PASSKEY_ENVIRONMENT_FAILURES_ALLOWED, PASSKEY_FAILURES_ALLOWED
    from tests.helpers import PASSKEY, restore_api

    filename = backup_run_in_process(app)["result"]["filename"]
    client = app.test_client()
    # each new admin spends their own 5 guesses, until the console's 20 are gone
    for n in range(PASSKEY_ENVIRONMENT_FAILURES_ALLOWED // PASSKEY_FAILURES_ALLOWED):
        make_user(f"admin{n}", "admin")
        headers = token_for(f"admin{n}")
        for i in range(PASSKEY_FAILURES_ALLOWED):
            assert restore_api(client, headers, filename, passkey=f"guess-{n}-{i}").status_code == 403
    make_user("fresh", "admin")  # another admin does not reset the count
    refused = restore_api(client, token_for("fresh"), filename, passkey=PASSKEY)
    assert refused.status_code == 429 and "Too many wrong passkeys" in refused.get_json()["error"]
