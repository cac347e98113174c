"""Pairing each event's live and shadow answers with its outcome, in whatever order they come."""

from __future__ import annotations

import datetime as dt

import orjson
from prometheus_client import CollectorRegistry

from stream.contracts import Provenance
from stream.outcomes.pairing import ComparisonReport, Pairing

NOW = dt.datetime.now(dt.UTC).isoformat()


def _provenance(event_id, role, version, score):
    return Provenance.model_validate(
        {
            "event_id": event_id, "score": score, "role": role,
            "input": {"topic": "events", "partition": 0, "offset": 1, "timestamp_ms": None},
            "model": {"name": "m", "version": version, "sha256": version * 64},
            "feature_hash": "0" * 32, "personal": {},
            "scorer": {"version": "0", "revision": None, "worker_id": "h:1"},
            "occurred_at": NOW, "received_at": NOW, "scored_at": NOW, "emitted_at": NOW,
        }
    )  # fmt: skip


def _pairing(window=4, capacity=100):
    sent: list[bytes] = []
    registry = CollectorRegistry()
    return Pairing(window, registry, "h:1", sent.append, capacity=capacity), sent, registry


def test_any_order_pairs_once_and_a_canary_swaps_the_roles_back():
    pairing, sent, registry = _pairing()
    for i in range(4):  # outcome first, then the shadow, then the live answer; the canary's keys: 1 and 3
        canary = i % 2 == 1
        pairing.observed(f"e{i}", True)
        pairing.predicted(_provenance(f"e{i}", "shadow", "1" if canary else "2", 0.3 if canary else 0.9))
        pairing.predicted(_provenance(f"e{i}", "canary" if canary else "champion", "2" if canary else "1",
                                      0.9 if canary else 0.3))  # fmt: skip
        pairing.observed(f"e{i}", True)  # read again: nothing new
    (report,) = [ComparisonReport.model_validate(orjson.loads(r)) for r in sent]
    assert (report.champion.version, report.challenger.version, report.pairs) == ("1", "2", 4)
    assert (
        report.log_loss["champion"] > report.log_loss["challenger"] and report.accuracy["challenger"] == 1.0
    )
    value = registry.get_sample_value
    assert value("streamscore_model_compared_accuracy", {"model": "m/2", "role": "challenger"}) == 1.0
    assert value("streamscore_model_comparison_pairs", {"champion": "m/1", "challenger": "m/2"}) == 4


def test_waiting_halves_are_bounded():
    pairing, sent, _ = _pairing(capacity=100)
    for i in range(50):
        pairing.predicted(_provenance(f"x{i}", "champion", "1", 0.5))  # no challenger yet: a tenth kept
    assert len(pairing._waiting) == 10 and pairing.dropped == 40
    pairing.predicted(_provenance("s", "shadow", "2", 0.5))
    for i in range(200):
        pairing.observed(f"y{i}", False)
    assert len(pairing._waiting) == 100 and not sent
