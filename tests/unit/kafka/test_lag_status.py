"""Burrow's rules over hand-made snapshot sequences: each status, and where one ends and another begins."""

from __future__ import annotations

import pytest

from stream.kafka.lag_status import MIN_SNAPSHOTS, Snapshot, Status, Window, group_status, partition_status


def seq(offsets: list[int | None], lags: list[int], owned: bool = True) -> list[Snapshot]:
    return [Snapshot(float(i), o, lag, owned) for i, (o, lag) in enumerate(zip(offsets, lags, strict=True))]


@pytest.mark.parametrize(
    ("offsets", "lags", "owned", "expected"),
    [
        # keeps up: lag zero now, or at any time in the window (Burrow's rule 1)
        ([10, 20, 30, 40], [0, 0, 0, 0], True, Status.OK),
        ([10, 20, 30, 40], [5, 0, 7, 9], True, Status.OK),
        ([10, 10, 10, 10], [3, 3, 3, 0], False, Status.OK),
        # commits and the lag shrinks somewhere: OK
        ([10, 20, 30, 40], [50, 45, 48, 60], True, Status.OK),
        # commits, but the lag never goes down: WARN (rule 5), flat lag included
        ([10, 20, 30, 40], [50, 55, 60, 70], True, Status.WARN),
        ([10, 20, 30, 40], [50, 50, 50, 50], True, Status.WARN),
        # the offset does not move, lag above zero, a member holds the partition: STALL (rule 4)
        ([10, 10, 10, 10], [5, 9, 12, 20], True, Status.STALL),
        # ... and nobody holds it: STOP (rule 3)
        ([10, 10, 10, 10], [5, 9, 12, 20], False, Status.STOP),
        ([None, None, None], [7, 7, 9], False, Status.STOP),  # never committed, nobody reading
        # moved at first, then stuck: it moved within the window, so it is not stalled yet
        ([10, 30, 30, 30], [40, 50, 60, 70], True, Status.WARN),
        # the offset went back: ERR (Burrow's REWIND), before anything else
        ([10, 20, 5, 30], [5, 6, 30, 40], True, Status.ERR),
        ([30, 30, 20, 20], [5, 6, 30, 40], False, Status.ERR),
        # too few snapshots to say anything but OK
        ([10, 10], [5, 9], False, Status.OK),
    ],
)
def test_partition_status(offsets, lags, owned, expected):
    assert partition_status(seq(offsets, lags, owned)) == expected


def test_the_window_slides_and_a_stall_clears_once_the_consumer_moves_and_catches_up():
    window = Window(seconds=3.0)
    key = ("g", "events", 0)
    statuses = [window.add(key, Snapshot(float(t), 100, 10 + t, True)) for t in range(6)]
    assert statuses[: MIN_SNAPSHOTS - 1] == [Status.OK] * (MIN_SNAPSHOTS - 1)
    assert statuses[-1] == Status.STALL
    assert window.add(key, Snapshot(6.0, 150, 5, True)) == Status.OK  # moved, the lag went down
    # the window only holds the last 3 s: the old stall is forgotten once it slides out
    assert [window.add(key, Snapshot(float(t), 150 + t, 20 + t, True)) for t in (7, 8, 9, 10)][
        -1
    ] == Status.WARN


def test_forget_drops_only_the_selected_keys_not_reported_any_more():
    window = Window(seconds=60)
    for key in (("a", "t", 0), ("a", "t", 1), ("b", "t", 0)):
        for t in range(3):
            window.add(key, Snapshot(float(t), 1, 5, False))
    window.forget({("a", "t", 0)}, among=lambda key: key[0] == "a")
    assert window.add(("a", "t", 1), Snapshot(3.0, 1, 5, False)) == Status.OK  # started afresh
    assert window.add(("b", "t", 0), Snapshot(3.0, 1, 5, False)) == Status.STOP  # kept


def test_group_status_is_the_worst_partition():
    assert group_status([]) == Status.OK
    assert group_status([Status.OK, Status.WARN, Status.OK]) == Status.WARN
    assert group_status([Status.STALL, Status.ERR, Status.STOP]) == Status.ERR
    assert [s.value for s in Status] == [0, 1, 2, 3, 4]  # the gauge's documented codes
