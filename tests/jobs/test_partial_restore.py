"""Partial restore (issue 34, item 4): only the chosen tables, with what they need, into a new database; a name the
archive does not hold refused by the job (which reads the archive's own list); into the live database refused.

Against real PostgreSQL: the rich database of tests/support/rich_database.py, compared with
tests/support/fidelity.py's schema dump and row fingerprints.
"""

from __future__ import annotations

import re

import psycopg

from tests.helpers import PASSKEY, audit_rows, backup_run_in_process, job_of, post, run_jobs_for, signed_in
from tests.jobs.test_restore_new_database import dropped_after, into_new, text_of
from tests.support.databases import PG, database_names, new_name, table_fingerprint
from tests.support.fidelity import schema_objects, sequence_values, table_rows
from tests.support.rich_database import rich_database

CHOSEN = ["shop.orders", "shop.words"]


def relations(dbname: str) -> list[str]:
    """Every user table, view, materialized view and foreign table of `dbname`, "schema.name"."""
    with psycopg.connect(**{**PG, "dbname": dbname}) as conn:
        return [r[0] for r in conn.execute(
            """SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> 'information_schema'
                  AND n.nspname !~ '^pg_' AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.objid = c.oid
                                                          AND e.classid = 'pg_class'::regclass AND e.deptype = 'e')
                ORDER BY 1""")]  # fmt: skip


def rows(dbname: str) -> dict[str, object]:
    """Each table's row count and checksum, and each sequence's value."""
    with psycopg.connect(**{**PG, "dbname": dbname}) as conn:
        return {**table_rows(conn), **{f"sequence {k}": v for k, v in sequence_values(conn).items()}}


def of_the_chosen(objects: dict[str, str]) -> dict[str, str]:
    """The schema dump's objects of shop.orders and shop.words: the tables, their constraints, indexes, defaults,
    comments, grants and owned sequences (the foreign key to shop.customers, left out, aside)."""
    return {key: text for key, text in objects.items()
            if key.endswith(" in shop") and re.search(r"\b(orders|words)(\b|_)", key.removesuffix(" in shop"))
            and not key.startswith("FK CONSTRAINT")}  # fmt: skip


def test_two_tables_into_a_new_database_equal_the_backup_and_nothing_else_is_there(make_app, make_user, pg_admin):
    with rich_database(pg_admin) as rich, dropped_after(pg_admin, new_name("pgct_part")) as new:
        app = make_app(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{rich.name}")
        before_schema, before_rows = schema_objects(rich.name, PG), rows(rich.name)
        filename = backup_run_in_process(app)["result"]["filename"]
        client, auth = signed_in(app, make_user, "admin", "ada")
        url = f"/backups/{filename}/restore"

        page = client.get(f"{url}?into=new").get_data(as_text=True)  # the signed manifest's tables, by schema
        assert re.search(r'<legend>shop</legend>.*value="shop\.orders"', page, re.S), page
        assert 'value="audit.events"' in page and 'id="tables-unknown"' not in page

        asked = post(client, auth, url, {"where": "new", "new_database": new, "passkey": PASSKEY,
                                         "confirm": f"new:{new}", "tables": CHOSEN}, page=url)  # fmt: skip
        assert asked.status_code == 303, asked.get_data(as_text=True)
        run_jobs_for(app)
        job_id = asked.headers["Location"].rsplit("/", 1)[-1]
        status = job_of(app, job_id)

        assert status["status"] == "finished", status["error"]
        assert status["result"]["only_tables"] == CHOSEN
        assert relations(new) == CHOSEN  # no other table, view or materialized view
        after_rows = rows(new)
        assert after_rows == {t: before_rows[t] for t in after_rows}
        kept_sequences = ["sequence audit.batch_no", "sequence shop.invoice_no", "sequence shop.orders_id_seq"]
        assert sorted(after_rows) == sorted([*CHOSEN, *kept_sequences])  # the standalone sequences are kept
        chosen_before = of_the_chosen(before_schema)
        assert "TABLE orders in shop" in chosen_before and "INDEX orders_status in shop" in chosen_before
        assert of_the_chosen(schema_objects(new, PG)) == chosen_before
        # The foreign key to shop.customers, which was not chosen, cannot hold: left out, and said.
        assert any("shop.orders: orders_customer_id_fkey" in note for note in status["result"]["notes"])
        job_html = client.get(f"/jobs/{job_id}").get_data(as_text=True)
        assert "Only 2 tables of the backup were restored" in text_of(job_html), job_html
        assert "<code>shop.orders</code>, <code>shop.words</code>" in job_html
        assert "orders_customer_id_fkey" in job_html
        assert "only the tables shop.orders, shop.words" in audit_rows(app, "restore")[-1].detail
        assert database_names(pg_admin, f"{rich.name}_pgc_%") == []


def test_a_table_the_archive_does_not_hold_is_refused_by_the_job(app, make_user, token_for, pg_admin, target_db):
    filename = backup_run_in_process(app)["result"]["filename"]
    make_user("ada", "admin")
    live = table_fingerprint(target_db)
    new = new_name("pgct_part")
    asked = into_new(app, token_for("ada"), filename, new, tables=["public.nosuch"])
    assert asked.status_code == 202, asked.get_json()
    run_jobs_for(app)
    failed = job_of(app, asked.get_json()["job_id"])
    assert failed["status"] == "failed"
    assert "the backup holds no table public.nosuch" in failed["error"] and "nothing was changed" in failed["error"]
    assert database_names(pg_admin, new) == [] and database_names(pg_admin, f"{target_db}_pgc_%") == []
    assert table_fingerprint(target_db) == live

    bad = into_new(app, token_for("ada"), filename, new, tables="public.orders")
    assert bad.status_code == 400 and "non-empty list" in bad.get_json()["error"]


def test_part_of_a_backup_into_the_live_database_is_refused(app, make_user, token_for, target_db):
    filename = backup_run_in_process(app)["result"]["filename"]
    client, auth = signed_in(app, make_user, "admin", "ada")
    body = {"filename": filename, "passkey": PASSKEY, "tables": ["public.orders"]}
    api = app.test_client().post("/api/setting/restore", headers=token_for("ada"), json=body)
    assert api.status_code == 400 and "into a new database, not into the live one" in api.get_json()["error"]
    url = f"/backups/{filename}/restore"
    form = {"where": "replace", "passkey": PASSKEY, "confirm": target_db, "tables": ["public.orders"]}
    page = post(client, auth, url, form, page=url)
    assert page.status_code == 400
    assert "into a new database, not into the live one" in page.get_data(as_text=True)
    assert audit_rows(app, "restore") == []
