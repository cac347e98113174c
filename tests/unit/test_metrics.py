import random

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.metrics import LATENCY_BUCKETS, BatchHistogram

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
