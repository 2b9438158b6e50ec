"""Which entries of an archive's table of contents a partial restore leaves out (app/domain/partial_restore.py),
on a `pg_restore --list --verbose` listing as pg_restore prints it (a real archive: tests/jobs/test_partial_restore.py).
"""

from __future__ import annotations

import pytest

from app.domain import partial_restore
from app.domain.archive import ArchiveContents, _entries
from app.domain.restore_database import RestoreRefused

LISTING = """;
; Selected TOC Entries:
;
3336; 0 0 ENCODING - ENCODING
10; 2615 100 SCHEMA - shop o
20; 1259 200 TABLE shop orders o
;\tdepends on: 10
21; 1259 201 TABLE shop customers o
;\tdepends on: 10
22; 1259 202 SEQUENCE shop customers_id_seq o
;\tdepends on: 10
23; 0 0 SEQUENCE OWNED BY shop customers_id_seq o
;\tdepends on: 22 21
24; 1259 203 VIEW shop order_totals o
;\tdepends on: 20 21
30; 0 200 TABLE DATA shop orders o
;\tdepends on: 20
31; 0 201 TABLE DATA shop customers o
;\tdepends on: 21
32; 0 0 SEQUENCE SET shop customers_id_seq o
;\tdepends on: 22
40; 2606 300 CONSTRAINT shop customers customers_pkey o
;\tdepends on: 21
41; 2606 301 FK CONSTRAINT shop orders orders_customer_id_fkey o
;\tdepends on: 20 40
42; 1259 302 INDEX shop orders_note o
;\tdepends on: 20
"""


def contents() -> ArchiveContents:
    return ArchiveContents(_entries(LISTING), None, frozenset())


def test_a_chosen_table_keeps_what_hangs_on_it_and_the_rest_goes_with_its_dependants():
    plan = partial_restore.plan(contents(), ["shop.orders"])
    left_out = sorted(int(line.split(";")[0]) for line in plan.left_out)
    # customers, its owned sequence (ownership, value), the view, its data, its key, the foreign key to it
    assert left_out == [21, 22, 23, 24, 31, 32, 40, 41]
    assert plan.dropped_foreign_keys == ("shop.orders: orders_customer_id_fkey",)
    assert "orders_customer_id_fkey" in (plan.note or "")


def test_both_tables_chosen_keep_their_foreign_key():
    plan = partial_restore.plan(contents(), ["shop.orders", "shop.customers"])
    assert sorted(int(line.split(";")[0]) for line in plan.left_out) == [24]  # the view only
    assert plan.dropped_foreign_keys == () and plan.note is None


@pytest.mark.parametrize("chosen", [["shop.order_totals"], ["public.orders"], []])
def test_a_name_that_is_not_a_table_of_the_archive_is_refused(chosen):
    with pytest.raises(RestoreRefused, match="nothing was changed"):
        partial_restore.plan(contents(), chosen)


@pytest.mark.parametrize("tables", ["shop.orders", [], ["orders"], [1], ["x." * 200]])
def test_a_selection_that_is_not_a_list_of_names_is_said(tables):
    assert partial_restore.selection_problem(tables)
