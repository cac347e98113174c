"""Model-change records and the timeline read back from them."""

from __future__ import annotations

import datetime as dt

from stream.contracts import ModelRef
from stream.lifecycle.changes import ChangeLog, ModelChange, Timeline

V1 = ModelRef(name="m", version="1", sha256="a" * 64)
V2 = ModelRef(name="m", version="2", sha256="b" * 64)


def _change(kind, new, offsets, old=None):
    return ModelChange(
        kind=kind, old=old, new=new, app_id="app", instance_id="w", worker_id="h:1",
        at=dt.datetime.now(dt.UTC), topic="events", first_offsets=offsets,
    )  # fmt: skip


def test_the_timeline_names_the_model_of_each_offset():
    timeline = Timeline([_change("start", V1, {0: 0, 1: 5}), _change("switch", V2, {0: 10, 1: 7}, V1)])
    assert [timeline.model(0, o) for o in (0, 9, 10, 99)] == [V1, V1, V2, V2]
    assert timeline.model(1, 4) is None and timeline.model(1, 6) == V1 and timeline.model(1, 7) == V2
    assert timeline.model(2, 0) is None


def test_a_later_record_from_an_earlier_offset_replaces_what_followed():
    """A rewind (or the next owner's assignment) scores from its offset on with its model."""
    timeline = Timeline(
        [_change("start", V1, {0: 0}), _change("switch", V2, {0: 10}, V1), _change("rewind", V2, {0: 8})]
    )
    assert timeline.switches(0) == [(0, V1), (8, V2)]


def test_records_are_keyed_never_twice_and_valid():
    from model_versions import SHIPPED

    from stream.scoring.model import load_card

    card = load_card(SHIPPED)
    log = ChangeLog("model-changes", "events", "app", "w0", "host:1")
    first = log.record("start", None, card, {1: 4, 0: 3})
    second = log.record("switch", card, card, {0: 9})
    assert first.key != second.key and first.topic == "model-changes" and first.partition == 0
    change = ModelChange.model_validate_json(first.value)
    assert change.first_offsets == {0: 3, 1: 4} and change.new.sha256 == card.sha256 and change.old is None


class _Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


def _batch(*pairs):
    return [_Msg(p, o) for p, o in pairs]


def _read(records):
    return [
        (c.kind, c.old.version if c.old else None, c.first_offsets)
        for c in (ModelChange.model_validate_json(r.value) for r in records)
    ]


def test_a_partition_is_recorded_from_the_first_offset_the_loop_scores():
    from model_versions import SHIPPED

    from stream.scoring.model import load_card

    card = load_card(SHIPPED)
    log = ChangeLog("model-changes", "events", "app", "w0", "host:1")
    log.assigned([0, 1])
    assert _read(log.due(_batch((0, 5), (0, 6)), card)) == [("start", None, {0: 5})]
    assert _read(log.due(_batch((0, 7), (1, 3), (1, 4)), card)) == [("start", None, {1: 3})]
    assert log.due(_batch((0, 8), (1, 5)), card) == [], "recorded once"
    log.settled()
    log.assigned([2])
    log.switched(card)  # partition 2 has not been scored: it keeps its reason
    assert sorted(_read(log.due(_batch((1, 6), (2, 0), (0, 9)), card)), key=str) == [
        ("assign", None, {2: 0}),
        ("switch", card.version, {0: 9, 1: 6}),
    ]


def test_an_abort_makes_the_records_it_held_due_again_and_a_commit_settles_them():
    from model_versions import SHIPPED

    from stream.scoring.model import load_card

    card = load_card(SHIPPED)
    log = ChangeLog("model-changes", "events", "app", "w0", "host:1")
    log.assigned([0, 1])
    log.due(_batch((0, 5), (1, 1)), card)
    log.settled()
    log.switched(card)
    assert _read(log.due(_batch((0, 9)), card)) == [("switch", card.version, {0: 9})]
    log.aborted()  # the batch at 9 is read again (from the committed offset, say 6)
    assert _read(log.due(_batch((0, 6), (1, 2)), card)) == [("switch", card.version, {0: 6, 1: 2})]
    log.settled()
    log.aborted()
    assert log.due(_batch((0, 7), (1, 3)), card) == [], "a committed record is not written again"
    log.switched(card)
    log.revoked([0])
    assert _read(log.due(_batch((0, 8), (1, 4)), card)) == [("switch", card.version, {1: 4})]
