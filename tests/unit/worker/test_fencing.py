"""Exactly once without KIP-890 in the client: after an ending transactional call that timed out or
failed otherwise, the next transaction begins on a new producer (a new epoch); a clean abortable error
keeps the producer. The loop runs here on stand-ins for the two clients (the real ones are exercised
on brokers by the fault-injection suite)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from stream.settings import Settings
from stream.worker.app import create_pipeline
from stream.worker.fencing import needs_new_producer
from stream.worker.health import Health
from stream.worker.loop import ScoringLoop
from stream.worker.metrics import WorkerMetrics

TIMED_OUT = KafkaError(KafkaError._TIMED_OUT, "EndTxn timed out", retriable=True)
MOVED_ON = KafkaError(KafkaError.ILLEGAL_GENERATION, "the group moved on", txn_requires_abort=True)
PRODUCE_TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT, "a record timed out", txn_requires_abort=True)
BAD_STATE = KafkaError(KafkaError.INVALID_TXN_STATE, "invalid transaction state")


@pytest.mark.parametrize(
    ("error", "replace"),
    [(TIMED_OUT, True), (PRODUCE_TIMED_OUT, True), (BAD_STATE, True), (MOVED_ON, False)],
)
def test_only_a_clean_abortable_error_keeps_the_producer(error: KafkaError, replace: bool) -> None:
    assert needs_new_producer(error) is replace


class FakeProducer:
    """The transactional calls the loop makes, each failing once with what ``failures`` holds."""

    def __init__(self, failures: dict[str, KafkaError] | None = None) -> None:
        self.failures = dict(failures or {})
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failures:
            raise KafkaException(self.failures.pop(name))

    def __getattr__(self, name: str) -> Any:
        if name in {"init_transactions", "begin_transaction", "commit_transaction", "abort_transaction"}:
            return lambda *args: self._call(name)
        if name == "send_offsets_to_transaction":
            return lambda *args: self._call(name)
        if name in {"purge", "close", "poll", "flush"}:
            return lambda *args, **kwargs: self.calls.append(name) or 0
        raise AttributeError(name)


class FakeConsumer:
    def consumer_group_metadata(self) -> object:
        return object()

    def assignment(self) -> list:
        return []


@pytest.fixture
def loop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> ScoringLoop:
    made: list[FakeProducer] = []

    def new_producer(self: ScoringLoop) -> FakeProducer:
        made.append(FakeProducer(getattr(self, "next_failures", None)))
        return made[-1]

    monkeypatch.setattr(ScoringLoop, "_new_producer", new_producer)
    guarantee = {"processing_guarantee": "exactly_once", "drift_window": 0}
    settings = Settings(_env_file=None, data_dir=tmp_path, secret="s" * 32, **guarantee)
    scoring = ScoringLoop(settings, create_pipeline(settings), WorkerMetrics(), Health())
    scoring.consumer = FakeConsumer()  # type: ignore[assignment]
    scoring.made = made  # type: ignore[attr-defined]
    return scoring


def _one_transaction(loop: ScoringLoop) -> None:
    loop._begin()
    loop._pending[0] = 10
    loop._commit_transaction()


def test_a_commit_that_timed_out_is_retried_and_the_next_transaction_has_a_new_epoch(loop):
    first = loop.producer
    first.failures["commit_transaction"] = TIMED_OUT
    _one_transaction(loop)  # the commit times out, is called again and succeeds: nothing to rewind
    assert first.calls.count("commit_transaction") == 2 and "abort_transaction" not in first.calls
    assert loop.producer is first, "replaced only before the next transaction begins"
    loop._begin()
    second = loop.producer
    assert second is not first and second.calls == ["init_transactions", "begin_transaction"]
    assert first.calls[-2:] == ["purge", "close"], "the old producer is closed after the new epoch"
    assert loop.metrics.producers_replaced._value.get() == 1


def test_offsets_refused_by_a_group_that_moved_on_abort_on_the_same_producer(loop):
    first = loop.producer
    first.failures["send_offsets_to_transaction"] = MOVED_ON
    _one_transaction(loop)
    assert first.calls[-1] == "abort_transaction"
    loop._begin()
    assert loop.producer is first and first.calls[-1] == "begin_transaction"
    assert loop.metrics.producers_replaced._value.get() == 0


def test_an_abortable_commit_whose_records_timed_out_aborts_then_takes_a_new_epoch(loop):
    first = loop.producer
    first.failures["commit_transaction"] = PRODUCE_TIMED_OUT
    _one_transaction(loop)
    assert first.calls[-1] == "abort_transaction", "aborted and rewound as before"
    loop._begin()
    assert loop.producer is not first and loop.producer.calls == ["init_transactions", "begin_transaction"]


def test_an_abort_that_timed_out_also_takes_a_new_epoch(loop):
    first = loop.producer
    first.failures["send_offsets_to_transaction"] = MOVED_ON
    first.failures["abort_transaction"] = TIMED_OUT
    _one_transaction(loop)
    assert first.calls.count("abort_transaction") == 2, "the abort is retried"
    loop._begin()
    assert loop.producer is not first
