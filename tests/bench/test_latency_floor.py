"""The latency floor's rung on a real broker, measured by the real load generator and reader."""

from __future__ import annotations

import pytest

from bench import ladder
from bench.harness import Harness
from bench.load import Pool, demo_events

pytestmark = pytest.mark.integration

RATE, SECONDS = 200, 2.0


def test_the_floor_answers_every_event_and_each_is_read_after_its_append(kafka_bootstrap):
    floor = next(r for r in ladder.chosen(quick=True) if r.key == "floor")
    pool = Pool([{"key": k, "value": v} for k, v, *_ in demo_events(1_000, seed=11)], {})
    with Harness(kafka_bootstrap, floor, pool) as harness:
        harness.warm_up(timeout=60)
        figures, timed = harness.latency(RATE, SECONDS)
        alive = all(p.poll() is None for p in harness.procs)
    assert alive, "the floor is still running after the load"
    assert figures["sent"] >= RATE * SECONDS * 0.9
    assert figures["read"] == figures["sent"] == len(timed), "every event was answered and read"
    assert 0 < figures["events"] < figures["read"], "the warm-up is left out"
    for kind in ("append", "read"):
        assert {f"{kind}_{q}_ms" for q in ("p50", "p95", "p99", "max")} <= set(figures)
    late = [t for t in timed if t.read < t.appended]
    assert not late, f"{len(late)} predictions read before the broker appended them: {late[:3]}"
    assert all(t.appended >= t.occurred - 0.001 for t in timed)
    assert figures["read_p50_ms"] >= figures["append_p50_ms"]
    assert figures["scorer_cpu_share"] >= 0 and figures["machine_cores_busy"] > 0
    assert figures["generator_cpu_us_per_event"] > 0
