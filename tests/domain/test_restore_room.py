"""Whether a restore downloads its archive or streams it: room on the worker's disk (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.catalog import Backup
from app.domain.restore import ROOM_MARGIN, has_room, plain_size, room_needed, streaming_note

MiB = 1024 * 1024
GiB = 1024 * MiB
AT = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)


def backup(size: int, name: str = "shop_staging_2024-03-01_07-30-00.dump") -> Backup:
    return Backup(name, size, AT, AT, "shop", "staging", True)


@pytest.mark.parametrize(
    ("size", "free", "room"),
    [
        (0, ROOM_MARGIN, True),  # an empty archive still leaves the margin free
        (0, ROOM_MARGIN - 1, False),
        (100 * MiB, 100 * MiB + 5 * MiB + ROOM_MARGIN, True),  # size + 5 % + margin, exactly
        (100 * MiB, 100 * MiB + 5 * MiB + ROOM_MARGIN - 1, False),
        (100 * MiB, 100 * MiB, False),  # it would fit, but fill the disk
        (12 * GiB, 4 * GiB, False),
        (1024 * GiB, 2048 * GiB, True),
    ],
)
def test_a_copy_needs_its_size_five_percent_more_and_the_margin(size, free, room):
    assert room_needed(size) == size + size // 20 + ROOM_MARGIN
    assert has_room(size, free) is room


def test_an_age_files_plain_size_comes_from_its_manifest_only_where_ages_overhead_explains_it():
    stored = 10 * MiB + 4096
    age = backup(stored, "shop_staging_2024-03-01_07-30-00.dump.age")
    assert plain_size(age, {"archive_size": 10 * MiB}) == 10 * MiB
    assert plain_size(age, {"archive_size": 1}) == stored  # a manifest is not proof: never smaller than age makes it
    assert plain_size(age, {"archive_size": stored + 1}) == stored  # nor larger than the file
    assert plain_size(age, {"archive_size": "10485760"}) == stored
    assert plain_size(age, None) == stored
    assert plain_size(backup(stored), {"archive_size": 10 * MiB}) == stored  # a plain archive is its own size


def test_the_note_says_the_numbers_and_what_happens_instead():
    note = streaming_note(int(12.3 * GiB), int(4.1 * GiB), "/tmp")
    assert note.startswith("There is not room for a copy of the 12.3 GB archive in /tmp (4.1 GB free): "
                           "it is streamed from the store into pg_restore, one table at a time")  # fmt: skip
