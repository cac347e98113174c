"""A registered format's rung on a real broker and schema registry: latency points taken as JSON's
are, the generator stamping each event's send time in the rung's format and the reader taking it from
predictions in that format. Protobuf here, its stamp the most involved (a Timestamp's length, seconds
and nanos); every format's stamp is read back through a real pipeline in ``test_load.py``."""

from __future__ import annotations

import dataclasses
import time

import pytest

from bench import ladder
from bench.harness import Harness
from bench.load import Pool

pytestmark = pytest.mark.integration

RATE = 300
#: The quick plan's points (half the rung's maximum, and a rate), in short drains and loads.
PLAN = dataclasses.replace(
    ladder.QUICK, drain_seconds=0.5, probe_seconds=0.2, latency_seconds=2.0, rates=(RATE,), largest=4_000
)


@pytest.fixture(scope="module")
def pool() -> Pool:
    return Pool.generate(4_000, seed=13)


RUNGS = ["streamscore-protobuf"]


@pytest.mark.parametrize("key", RUNGS)
def test_a_registered_rung_gets_latency_points_with_each_event_timed_from_its_sending(
    kafka_bootstrap, schema_registry, pool, key, monkeypatch
):
    [rung] = ladder.chosen(quick=True, only=[key])
    loads: list[tuple[float, list]] = []
    measure = Harness.latency

    def latency(harness: Harness, rate: float, seconds: float) -> tuple[dict, list]:
        before = time.time()
        figures, timed = measure(harness, rate, seconds)
        loads.append((before, timed))
        return figures, timed

    monkeypatch.setattr(Harness, "latency", latency)
    result = ladder.measure_rung(kafka_bootstrap, rung, PLAN, pool, schema_registry)
    assert result["scores_match"] is True and "latency_skipped" not in result
    half, at_rate = result["latency"]
    assert half["fraction_of_max"] == 0.5 and at_rate["rate"] == RATE and "skipped" not in at_rate
    for point in (half, at_rate):
        assert point["read"] == point["sent"] > 0, "every event sent is read back"
        if point["generator_kept_up"]:  # else the point says the generator fell short, and by how much
            assert point["sent"] >= 0.9 * point["offered"] * PLAN.latency_seconds
        assert 0 < point["events"] < point["read"], "the warm-up is left out"
        assert 0 <= point["append_p50_ms"] <= point["read_p50_ms"] <= point["read_p99_ms"]
        assert point["generator_cpu_us_per_event"] > 0
    # the rate point is light enough for a loaded machine; half the maximum may outrun the generator
    assert at_rate["sent"] >= 0.9 * RATE * PLAN.latency_seconds and at_rate["generator_kept_up"]
    assert len(loads) == 2
    for before, timed in loads:
        early = [t for t in timed if not before <= t.occurred <= t.appended + 0.001]
        assert not early, f"{len(early)} events timed from before their load was sent: {early[:3]}"
