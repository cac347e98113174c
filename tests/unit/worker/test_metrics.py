import random

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.worker.metrics import LATENCY_BUCKETS, BatchHistogram

pytestmark = pytest.mark.unit


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_batch_histogram_exposes_what_prometheus_clients_histogram_does():
    rng = random.Random(4)
    values = [rng.choice((1e-4, 1e-3, 0.05, 1.0, 40.0)) * rng.random() * 2 for _ in range(2_000)]
    values += [0.0, 1e-4, 0.05, 30.0, 31.0]  # on the bounds and past the last one
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("x_seconds", "x", buckets=LATENCY_BUCKETS, registry=theirs)
    for v in values:
        histogram.observe(v)
    batched = BatchHistogram("x_seconds", "x", LATENCY_BUCKETS, ours)
    for i in range(0, len(values), 64):
        batched.observe_many(values[i : i + 64])
    batched.observe_many([])
    want, got = _samples(theirs), _samples(ours)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_events_far_from_the_clock_are_counted_apart_and_kept_out_of_the_latency():
    from stream.scoring.pipeline import BatchResult
    from stream.worker.metrics import WorkerMetrics

    metrics = WorkerMetrics(max_clock_skew_s=3_600.0)
    year_9999, year_1 = -253402214400.0 + 1.8e9, 1.8e9 + 62135596800.0  # event time -> emit, seconds
    latencies = [0.5, year_9999, 0.25, year_1, 3_599.0, -3_601.0, -2.0]
    metrics.observe(7, BatchResult(scored=7, latencies=latencies), 0.01)
    samples = _samples(metrics.registry)
    assert samples[("streamscore_events_clock_skewed_total", "")] == 3
    assert samples[("streamscore_end_to_end_latency_seconds_count", "")] == 4
    # the event 2 s in the future counts as no delay: the sum never goes down
    assert samples[("streamscore_end_to_end_latency_seconds_sum", "")] == pytest.approx(0.75 + 3_599.0)
    assert samples[("streamscore_end_to_end_latency_seconds_bucket", "0.0001")] == 1
    metrics.observe(1, BatchResult(scored=1, latencies=[]), 0.01)
    assert _samples(metrics.registry)[("streamscore_events_clock_skewed_total", "")] == 3


def test_the_clock_skew_bound_defaults_to_the_setting():
    from stream.settings import Settings
    from stream.worker.metrics import WorkerMetrics

    assert WorkerMetrics().max_clock_skew_s == Settings.model_fields["max_clock_skew_s"].default == 86_400.0
