"""One batch through the outcome loop, without a broker: decode, check, sample, move, join."""

from __future__ import annotations

import datetime as dt

import confluent_kafka
import pytest

from stream.contracts import Outcome, Provenance
from stream.kafka.partitioning import partition_of, sampled
from stream.keys import Keys
from stream.outcomes.kafka import OutcomeTopics
from stream.outcomes.loop import OutcomeLoop
from stream.outcomes.report import OutcomeMetrics
from stream.outcomes.store import PendingStore
from stream.settings import Settings
from stream.worker.health import Health

PARTITIONS = 3
TS = (confluent_kafka.TIMESTAMP_CREATE_TIME, 1_800_000_000_000)


def _provenance(event_id: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return Provenance(
        event_id=event_id, score=0.9, input={"topic": "e", "partition": 0, "offset": 0, "timestamp_ms": None},
        model={"name": "m", "version": "1", "sha256": "ab" * 32}, feature_hash="0" * 32, personal={},
        scorer={"version": "0", "revision": None, "worker_id": "t:1"},
        occurred_at=now, received_at=now, scored_at=now, emitted_at=now,
    ).model_dump_json().encode()  # fmt: skip


def _message(
    topic: str, event_id: str, value: bytes, partition: int | None = None
) -> confluent_kafka.Message:
    where = partition_of(event_id.encode(), PARTITIONS) if partition is None else partition
    return confluent_kafka.Message(
        topic=topic, partition=where, offset=0, key=event_id.encode(), value=value, timestamp=TS
    )


@pytest.fixture
def make_loop(tmp_path):
    made: list[OutcomeLoop] = []

    def make(**settings: object) -> OutcomeLoop:
        config = Settings(kafka_bootstrap_servers="127.0.0.1:1", app_id="app", outcome_window=50, **settings)
        store = PendingStore(tmp_path / f"s{len(made)}", Keys.from_secret("s" * 32).state, "cl", print)
        loop = OutcomeLoop(
            config, store, OutcomeMetrics(), Health(), OutcomeTopics.of(config), PARTITIONS, "test:1"
        )
        loop.join.rebuild(set(range(PARTITIONS)))
        made.append(loop)
        return loop

    yield make
    for loop in made:
        loop.consumer.close()
        loop.restorer.close()
        loop.windows.close()
        loop.producer.purge()
        loop.store.close()


def test_a_batch_joins_moves_misplaced_outcomes_and_dead_letters_invalid_ones(make_loop):
    loop = make_loop()
    ids = [f"event-{i}" for i in range(30)]
    outcome = lambda i: Outcome(event_id=i, positive=True, observed_at=dt.datetime.now(dt.UTC))  # noqa: E731
    batch = [_message("provenance", i, _provenance(i)) for i in ids]
    batch += [_message("outcomes", i, outcome(i).model_dump_json().encode()) for i in ids[:20]]
    wrong = [(i, (partition_of(i.encode(), PARTITIONS) + 1) % PARTITIONS) for i in ids[20:]]
    batch += [_message("outcomes", i, outcome(i).model_dump_json().encode(), p) for i, p in wrong]
    batch += [_message("outcomes", "bad", b'{"event_id": "bad", "positive": "maybe"}')]
    batch += [_message("provenance", "broken", b"{not json")]
    loop.process(batch)
    assert loop.join.counts["joined"] == 20 and loop.join.counts["invalid"] == 1
    assert loop.metrics.repartitioned._value.get() == 10, "sent to their own partition, not joined here"
    assert loop.metrics.invalid_predictions._value.get() == 1
    assert loop.join.waiting() == 30 and 10 + 1 <= len(loop.producer) < 30, "moved outcomes, a dead letter"
    assert sum(len(keys) for keys in loop._outbox.values()) == 30, (
        "the changelog, once per key, at the commit"
    )
    assert set(loop._pending.values()) == {1}, "next offsets, held until the commit"
    assert {t for t, _ in loop._pending} == {"provenance", "outcomes"}


def test_only_the_sample_is_joined(make_loop):
    loop = make_loop(outcome_sample=0.3)
    ids = [f"event-{i}" for i in range(400)]
    loop.process([_message("provenance", i, _provenance(i)) for i in ids])
    assert loop.join.waiting() == sum(sampled(i.encode(), 0.3) for i in ids)


def test_a_batch_feeds_the_estimate_check_with_each_events_input_position(make_loop):
    import orjson

    from stream.contracts import EstimateCheckReport

    loop = make_loop()
    sent: list[bytes] = []
    loop.estimates.send = sent.append
    ids = [f"event-{i}" for i in range(6)]
    outcome = lambda i: Outcome(event_id=i, positive=True, observed_at=dt.datetime.now(dt.UTC))  # noqa: E731
    batch = [_message("provenance", i, _provenance(i).replace(b'"offset":0', f'"offset":{n}'.encode()))
             for n, i in enumerate(ids)]  # fmt: skip
    loop.process(batch + [_message("outcomes", i, outcome(i).model_dump_json().encode()) for i in ids])
    assert sorted(p.offset for p in loop.estimates.pairs) == list(range(6))
    t = "2026-12-01T00:00:00Z"
    window = {
        "kind": "window", "model_name": "m", "model_version": "1", "worker_id": "s:1", "events": 4,
        "window_start": t, "window_end": t, "offsets": {"e[0]": {"first": 2, "last": 5}},
        "estimated": {"accuracy": {"value": 0.9, "lower": 0.8, "upper": 1.0}},
    }  # fmt: skip
    loop.estimates.window(orjson.dumps(window))
    (report,) = [EstimateCheckReport.model_validate_json(v) for v in sent]
    assert (report.outcomes, report.metrics["accuracy"].realised) == (4, 1.0)
