"""The outcome join and the rolling performance figures, without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from stream.keys import Keys
from stream.outcomes import Join, OutcomeMetrics, SignedEntries
from stream.performance import PerformanceTracker, calibration_error
from stream.settings import Settings

MODEL = "loan-approval/1"


def test_calibration_error():
    assert calibration_error([(True, 0.95), (False, 0.05)]) == pytest.approx(0.05)
    # every score 0.8 but only half positive: a gap of 0.3
    assert calibration_error([(True, 0.8), (False, 0.8)] * 50) == pytest.approx(0.3)


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


def _signed(raw: dict, rejected: list[str] | None = None, secret: str = "s" * 32) -> SignedEntries:
    return SignedEntries(
        raw,
        "app-pending-changelog",
        Keys.from_secret(secret).state,
        (rejected if rejected is not None else []).append,
    )


@pytest.fixture(params=["dict", "signed"])
def join(request):
    """The join over a plain dict, and over signed entries in a table of bytes (as the app runs it)."""
    settings = Settings(outcome_retention_s=100.0, outcome_max_pending=1_000, outcome_window=50)
    return Join({} if request.param == "dict" else _signed({}), settings, OutcomeMetrics())


def test_join_either_order_and_count_the_rest(join):
    assert join.prediction(0, "a", MODEL, 0.9, now=1.0) is None
    assert join.outcome(0, "a", True, now=2.0) == MODEL
    assert join.outcome(1, "b", False, now=3.0) is None  # outcome first
    assert join.prediction(1, "b", MODEL, 0.2, now=4.0) == MODEL
    assert join.outcome(0, "a", True, now=5.0) is None  # the same outcome again
    assert join.prediction(0, "a", MODEL, 0.9, now=6.0) is None  # the prediction again (at least once)
    join.prediction(2, "c", MODEL, 0.3, now=7.0)  # never gets an outcome
    join.outcome(2, "d", True, now=8.0)  # never gets a prediction
    join.expire(2, now=200.0)
    assert join.outcome(2, "c", True, now=201.0) is None, "late: its prediction has expired"
    assert join.counts == {
        "joined": 2,
        "duplicate": 1,
        "invalid": 0,
        "unmatched": 1,
        "expired_predictions": 1,
    }
    assert join.trackers[MODEL].report().outcomes == 2


def test_size_bound_expires_the_oldest_first(join):
    for i in range(1_500):
        join.prediction(0, f"e{i}", MODEL, 0.5, now=1.0 + i / 1_000)  # all within retention
        join.expire(0, now=2.5)
    assert len(join.table) == 1_000 and "e499" not in join.table and "e500" in join.table
    assert join.counts["expired_predictions"] == 500


def test_rebuild_from_the_table_restores_the_rolling_figures(join):
    rng = np.random.default_rng(5)
    for i, (y, s) in enumerate(_pairs(rng, 200)):
        join.prediction(i % 3, f"e{i}", MODEL, s, now=float(i))
        join.outcome(i % 3, f"e{i}", y, now=float(i) + 0.5)
    before = join.trackers[MODEL].report()
    restarted = Join(join.table, join.settings, OutcomeMetrics())
    assert restarted.rebuild({0, 1, 2}) == 200
    after = restarted.trackers[MODEL].report()
    assert (after.outcomes, after.accuracy, after.log_loss, after.roc_auc) == (
        before.outcomes,
        before.accuracy,
        before.log_loss,
        before.roc_auc,
    )
    assert sum(len(q) for q in restarted.expiry.values()) == 200
    assert restarted.rebuild({0}) == len([v for v in join.table.values() if v["p"] == 0])


def test_entries_not_signed_by_us_or_malformed_read_as_absent_and_are_counted():
    raw: dict[bytes, bytes] = {}
    rejected: list[str] = []
    entries = _signed(raw, rejected)
    entries["a"] = {"p": 0, "t": 1.0, "m": MODEL, "s": 0.5}
    entries["b"] = {"p": 1, "t": 2.0, "y": True}
    assert raw[b'"a"'].endswith(b'{"p":0,"t":1.0,"m":"loan-approval/1","s":0.5}'), "plain JSON, signed"
    signer = Keys.from_secret("s" * 32).state
    planted = {
        b'"c"': signer.sign(
            "app-pending-changelog[c]", b'{"__faust": {"ns": "@ReqRepRequest"}, "p": 0, "t": 1}'
        ),
        b'"d"': signer.sign("app-pending-changelog[d]", b'{"p": 0, "t": 1.0, "s": 0.5}'),  # a score, no model
        b'"e"': signer.sign("app-pending-changelog[e]", b'{"p": 0, "t": 1.0, "m": "x", "s": 7}'),
        b'"f"': raw[b'"a"'],  # a genuine entry copied under another key
        b'"g"': Keys.from_secret("t" * 32).state.sign(
            "app-pending-changelog[g]", b'{"p": 0, "t": 1.0, "y": true}'
        ),
        b'"h"': b'{"p": 0, "t": 1.0, "y": true}',  # unsigned, as the table held before
        b"not json": b"",
        b"[1]": b"",
    }
    raw.update(planted)
    assert entries.get("a") == {"p": 0, "t": 1.0, "m": MODEL, "s": 0.5}
    assert [entries.get(k) for k in "cdefgh"] == [None] * 6
    assert sorted(rejected) == sorted(["format"] * 3 + ["signature"] * 3)
    rejected.clear()
    assert dict(entries.items()) == {"a": entries["a"], "b": entries["b"]}
    assert sorted(rejected) == sorted(["format"] * 5 + ["signature"] * 3)
    assert entries.pop("c") is None and b'"c"' not in raw, "a refused entry can still be dropped"
    with pytest.raises(KeyError):
        entries["d"]


def test_rotation_keeps_the_entries_signed_with_the_previous_secret():
    raw: dict[bytes, bytes] = {}
    _signed(raw, secret="o" * 32)["a"] = {"p": 0, "t": 1.0, "y": False}
    rotated = SignedEntries(
        raw, "app-pending-changelog", Keys.from_secret("n" * 32, ("o" * 32,)).state, print
    )
    assert rotated.get("a") == {"p": 0, "t": 1.0, "y": False}


def test_faust_json_values_name_a_model_the_raw_table_never_builds():
    """Faust's JSON codec builds any registered Faust model a value names in "__faust"; the join table
    stores raw bytes, which come back as bytes."""
    import faust

    app = faust.App("t", autodiscover=False)
    planted = (
        b'{"__faust": {"ns": "@ReqRepRequest"}, "key": 1, "value": 2, "reply_to": "r", "correlation_id": "c"}'
    )
    assert type(app.serializers.loads_value(None, planted)).__name__ == "ReqRepRequest"
    table = app.Table("pending", key_type=bytes, value_type=bytes)  # as the outcome worker declares it
    assert (table.key_serializer, table.value_serializer) == ("raw", "raw")
    assert (
        app.serializers.loads_value(table.value_type, planted, serializer=table.value_serializer) == planted
    )
    assert app.serializers.loads_key(table.key_type, planted, serializer=table.key_serializer) == planted
