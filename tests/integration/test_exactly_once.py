"""Two workers in one group share 6 partitions in exactly-once mode: no event lost or scored twice."""

from __future__ import annotations

import re
import time

from conftest import read_topic

from stream.contracts import DeadLetter, Prediction, Provenance
from stream.kafka.topics import ensure_topics
from stream.tools.produce import produce

N_EVENTS = 4_000


def test_two_workers_exactly_once(kafka_bootstrap, worker_topics, start_worker):
    ensure_topics(kafka_bootstrap, {worker_topics.input: 6})
    first_worker = start_worker(processing_guarantee="exactly_once")
    first = produce(
        kafka_bootstrap, worker_topics.input, count=N_EVENTS // 2, seed=21, malformed_fraction=0.02
    )
    second_worker = start_worker(processing_guarantee="exactly_once")  # joins while the first is busy
    workers = [first_worker, second_worker]
    deadline = time.monotonic() + 60
    while not all(re.search(r"assigned partitions \[\d", w.output()) for w in workers):
        assert time.monotonic() < deadline, [w.output()[-2000:] for w in workers]
        time.sleep(0.2)
    second = produce(
        kafka_bootstrap, worker_topics.input, count=N_EVENTS // 2, seed=22, malformed_fraction=0.02
    )
    valid = first.valid | second.valid
    n_bad = len(first.malformed) + len(second.malformed)

    predictions = read_topic(
        kafka_bootstrap, worker_topics.predictions, len(valid), 120, 3.0, read_committed=True
    )
    provenance = read_topic(
        kafka_bootstrap, worker_topics.provenance, len(valid), 30, 1.0, read_committed=True
    )
    dead = read_topic(kafka_bootstrap, worker_topics.dlq, n_bad, 30, 1.0, read_committed=True)
    for w in workers:
        assert w.proc.poll() is None, w.output()

    ids = [Prediction.model_validate_json(m.value()).event_id for m in predictions]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} events scored twice"
    assert set(ids) == set(valid)
    workers_seen = {Provenance.model_validate_json(m.value()).scorer.worker_id for m in provenance}
    assert len(provenance) == len(valid)
    assert len(workers_seen) == 2, "both workers scored a share"
    origins = [(h.partition, h.offset) for h in (DeadLetter.from_headers(m.headers()) for m in dead)]
    assert len(origins) == len(set(origins)) == n_bad
