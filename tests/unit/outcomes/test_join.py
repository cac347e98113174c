"""The outcome join (batches over the RocksDB store) and the rolling performance figures, without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from stream.drift.performance import PerformanceTracker
from stream.kafka.partitioning import partition_of
from stream.keys import Keys
from stream.outcomes.join import Join, Observed, Predicted
from stream.outcomes.report import OutcomeMetrics
from stream.outcomes.store import Entry, PendingStore
from stream.settings import Settings

MODEL = "loan-approval/1"
SHA = "cd" * 32


def _pairs(rng, n, flip=False):
    y = rng.random(n) < 0.4
    scores = np.clip(np.where(y, rng.beta(8, 2, n), rng.beta(2, 8, n)), 0.001, 0.999)
    return list(zip((~y if flip else y).tolist(), scores.tolist(), strict=True))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_loss_detector_quiet_on_a_good_model_then_fires_on_a_concept_change(seed):
    rng = np.random.default_rng(seed)
    tracker = PerformanceTracker(window=1_000)
    assert not any(tracker.add(y, s) for y, s in _pairs(rng, 5_000)), "a false alarm"
    good = tracker.report()
    assert good.accuracy > 0.9 and good.roc_auc > 0.95 and good.log_loss < 0.35 and not good.loss_alarm
    fired_at = next(i for i, (y, s) in enumerate(_pairs(rng, 2_000, flip=True)) if tracker.add(y, s))
    assert fired_at < 100, "the labels flipped: the loss rises at once"
    assert tracker.report().loss_alarm


def test_a_loss_that_falls_is_not_decay():
    rng = np.random.default_rng(4)
    tracker = PerformanceTracker(window=500)
    for y, s in _pairs(rng, 1_000, flip=True):
        tracker.add(y, s)
    tracker.report()
    assert not any(tracker.add(y, s) for y, s in _pairs(rng, 3_000))


@pytest.fixture
def store(tmp_path):
    opened = PendingStore(tmp_path / "store", Keys.from_secret("s" * 32).state, "cl", print)
    yield opened
    opened.close()


@pytest.fixture
def join(store):
    settings = Settings(outcome_retention_s=100.0, outcome_max_pending=1_000, outcome_window=50)
    made = Join(store, settings, OutcomeMetrics())
    made.rebuild({0, 1, 2})
    return made


def _p(event_id: str, score: float, s: float) -> Predicted:
    return Predicted(event_id, MODEL, SHA, score, int(s * 1000))


def _o(event_id: str, positive: bool, s: float) -> Observed:
    return Observed(event_id, positive, int(s * 1000))


def _batch(join: Join, partition: int, items: list) -> tuple[list, list[str]]:
    records, joined, _ = join.batch([(partition, item) for item in items])
    return records.get(partition, []), joined


def test_join_either_order_and_count_the_rest(join):
    assert _batch(join, 0, [_p("a", 0.9, 1.0)])[1] == []
    assert _batch(join, 0, [_o("a", True, 2.0)])[1] == [MODEL]
    assert _batch(join, 1, [_o("b", False, 3.0)])[1] == []  # outcome first
    assert _batch(join, 1, [_p("b", 0.2, 4.0)])[1] == [MODEL]
    assert _batch(join, 0, [_o("a", True, 5.0)])[1] == []  # the same outcome again
    assert _batch(join, 0, [_p("a", 0.9, 6.0)])[1] == []  # the prediction again (at least once)
    _batch(join, 2, [_p("c", 0.3, 7.0), _o("d", True, 8.0)])  # never joined
    tombstones = join.expire(2, now_ms=200_000)
    assert sorted(tombstones) == [(b"c", None), (b"d", None)]
    assert _batch(join, 2, [_o("c", True, 201.0)])[1] == [], "late: its prediction has expired"
    assert join.counts == {
        "joined": 2,
        "duplicate": 1,
        "invalid": 0,
        "unmatched": 1,
        "expired_predictions": 1,
    }
    assert join.trackers[MODEL].report().outcomes == 2


def test_both_halves_in_one_batch_join_with_one_lookup(join, store):
    records, joined = _batch(
        join, 0, [_o("x", True, 1.0), _p("y", 0.4, 1.0), _p("x", 0.8, 1.5), _o("x", True, 2)]
    )
    assert joined == [MODEL] and join.counts["duplicate"] == 1
    assert sorted(k for k, _ in records) == [b"x", b"y"], "one change per event id and batch"
    (x,) = store.get_many(0, ["x"])
    assert (x.positive, x.score, x.joined_ms, x.stored_ms) == (True, 0.8, 1_500, 1_000)


def test_a_batch_of_several_partitions_joins_in_its_order(join, store):
    records, joined, moved = join.batch([(0, _p("a", 0.9, 1)), (1, _o("b", True, 2)), (0, _o("a", False, 3))])
    assert moved == [], "no partition count given: nothing is checked"
    assert joined == [MODEL] and sorted(records) == [0, 1]
    assert store.get_many(1, ["b"]) == [Entry(2_000, positive=True)] and store.get_many(0, ["b"]) == [None]


def test_only_outcomes_with_nothing_waiting_are_checked_for_their_partition(store):
    join = Join(store, Settings(outcome_window=50), OutcomeMetrics(), partitions=3)
    join.rebuild({0, 1, 2})
    here, elsewhere = "event-7", "event-1"  # murmur2: partitions 0 and 2 of 3
    assert [partition_of(i.encode(), 3) for i in (here, elsewhere, "event-3")] == [0, 2, 2]
    join.batch([(0, _p(elsewhere, 0.5, 1))])  # its provenance here, against the partitioner: joined here
    _, joined, moved = join.batch(
        [(0, _o(here, True, 2)), (0, _o(elsewhere, True, 2)), (0, _o("event-3", True, 2))]
    )
    assert joined == [MODEL] and [(p, o.event_id) for p, o in moved] == [(0, "event-3")]
    assert store.get_many(0, [here, "event-3"]) == [Entry(2_000, positive=True), None]
    _, _, moved = join.batch([(0, Observed("event-3", True, 3, placed=True))])
    assert moved == [], "read from the repartition topic: never moved again"


def test_a_batch_read_again_changes_nothing_but_the_duplicate_count(join):
    rng = np.random.default_rng(6)
    pairs = _pairs(rng, 100)
    _batch(join, 0, [_p(f"e{i}", s, i) for i, (_, s) in enumerate(pairs)])
    outcomes = [_o(f"e{i}", y, i + 0.5) for i, (y, _) in enumerate(pairs)]
    _batch(join, 0, outcomes)
    before = join.trackers[MODEL].figures()
    _batch(join, 0, outcomes)  # after a crash, the batch since the last commit is read again
    assert join.trackers[MODEL].figures() == before
    assert join.counts["joined"] == 100 and join.counts["duplicate"] == 100


def test_size_bound_expires_the_oldest_first(join, store):
    join.rebuild({0})
    _batch(join, 0, [_p(f"e{i}", 0.5, 1.0 + i / 1_000) for i in range(1_500)])  # all within retention
    join.expire(0, now_ms=2_500)
    assert store.count(0) == 1_000
    assert store.get_many(0, ["e499", "e500"])[0] is None and store.get_many(0, ["e500"])[0] is not None
    assert join.counts["expired_predictions"] == 500


def test_rebuild_from_the_store_restores_the_rolling_figures(join, store):
    rng = np.random.default_rng(5)
    for i, (y, s) in enumerate(_pairs(rng, 200)):
        _batch(join, i % 3, [_p(f"e{i}", s, i)])
        _batch(join, i % 3, [_o(f"e{i}", y, i + 0.5)])
    before = join.trackers[MODEL].report()
    restarted = Join(store, join.settings, OutcomeMetrics())
    assert restarted.rebuild({0, 1, 2}) == 200
    after = restarted.trackers[MODEL].report()
    assert (after.outcomes, after.accuracy, after.log_loss, after.roc_auc) == (
        before.outcomes,
        before.accuracy,
        before.log_loss,
        before.roc_auc,
    )
    assert restarted.rebuild({0}) == store.count(0) == 67
