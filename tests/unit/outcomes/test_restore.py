"""Where a partition's changelog is read from on assignment."""

from __future__ import annotations

from stream.outcomes.restore import start_offset

DAY = 86_400.0


def test_a_fresh_checkpoint_inside_the_changelog_is_resumed_from():
    assert start_offset((40, 1_000.0), 0, 100, 1_010.0, DAY) == 40
    assert start_offset((100, 1_000.0), 0, 100, 1_010.0, DAY) == 100, "nothing to read after a clean stop"


def test_no_stale_or_foreign_checkpoint_is_trusted():
    assert start_offset(None, 0, 100, 1_000.0, DAY) is None, "a new host"
    assert start_offset((40, 1_000.0), 0, 100, 1_000.0 + DAY + 1, DAY) is None, "older than the retention"
    assert start_offset((140, 1_000.0), 0, 100, 1_010.0, DAY) is None, (
        "past the end: the topic was made again"
    )
    assert start_offset((4, 1_000.0), 10, 100, 1_010.0, DAY) is None, "before the start: deleted records"
