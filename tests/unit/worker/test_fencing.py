"""Exactly once without KIP-890 in the client: after an ending transactional call that timed out or
failed otherwise, the next transaction begins on a new producer (a new epoch); a clean abortable error
keeps the producer. The loop runs here on stand-ins for the two clients (the real ones are exercised
on brokers by the fault-injection suite)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

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

    def __init__(self, log: list[str], failures: dict[str, KafkaError] | None = None) -> None:
        self.failures = dict(failures or {})
        self.calls: list[str] = []
        self.log = log  # every client's calls, in order
        self.closing_fails = False

    def _refuse(self, name: str) -> None:
        raise KafkaException(KafkaError(KafkaError.INVALID_TXN_STATE, f"{name} refused", fatal=True))

    def _call(self, name: str) -> None:
        self.calls.append(name)
        self.log.append(f"{id(self)} {name}")
        if name in self.failures:
            raise KafkaException(self.failures.pop(name))

    def __getattr__(self, name: str) -> Any:
        if name in {"init_transactions", "begin_transaction", "commit_transaction", "abort_transaction"}:
            return lambda *args: self._call(name)
        if name == "send_offsets_to_transaction":
            return lambda *args: self._call(name)
        if name in {"purge", "close"} and self.closing_fails:  # a producer in a fatal state
            return lambda *args, **kwargs: self._call(name) or self._refuse(name)
        if name in {"purge", "close", "poll", "flush"}:
            return lambda *args, **kwargs: self.calls.append(name) or 0
        raise AttributeError(name)


class FakeConsumer:
    """One owned partition whose committed offset is read (after ``log`` says what came before)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def consumer_group_metadata(self) -> object:
        return object()

    def assignment(self) -> list:
        return [TopicPartition("events", 0)]

    def committed(self, partitions: list, timeout: float) -> list:
        self.log.append("committed")
        return [TopicPartition("events", 0, 7)]

    def seek(self, partition: TopicPartition) -> None:
        self.log.append(f"seek {partition.offset}")


@pytest.fixture
def loop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> ScoringLoop:
    made: list[FakeProducer] = []
    log: list[str] = []

    def new_producer(self: ScoringLoop) -> FakeProducer:
        made.append(FakeProducer(log, getattr(self, "next_failures", None)))
        return made[-1]

    monkeypatch.setattr(ScoringLoop, "_new_producer", new_producer)
    guarantee = {"processing_guarantee": "exactly_once", "drift_window": 0}
    settings = Settings(_env_file=None, data_dir=tmp_path, secret="s" * 32, **guarantee)
    scoring = ScoringLoop(settings, create_pipeline(settings), WorkerMetrics(), Health())
    scoring.consumer = FakeConsumer(log)  # type: ignore[assignment]
    scoring.log = log  # type: ignore[attr-defined]
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
    second = loop.producer
    assert second is not first, "replaced at once: the rewind must see the transaction settled"
    assert loop.log[-4:] == [
        f"{id(first)} abort_transaction",
        f"{id(second)} init_transactions",  # waits for the old epoch's commit or abort, fences the rest
        "committed",
        "seek 7",
    ]
    assert first.calls[-2:] == ["purge", "close"]
    loop._begin()
    assert loop.producer is second and second.calls == ["init_transactions", "begin_transaction"]


def test_an_abort_that_timed_out_also_takes_a_new_epoch(loop):
    first = loop.producer
    first.failures["send_offsets_to_transaction"] = MOVED_ON
    first.failures["abort_transaction"] = TIMED_OUT
    _one_transaction(loop)
    assert first.calls.count("abort_transaction") == 2, "the abort is retried"
    loop._begin()
    assert loop.producer is not first


def test_an_abort_refused_after_a_failed_commit_is_ended_by_the_new_epoch(loop):
    first = loop.producer
    first.failures["commit_transaction"] = PRODUCE_TIMED_OUT
    first.failures["abort_transaction"] = BAD_STATE  # the commit may have reached the coordinator
    _one_transaction(loop)
    assert loop.producer is not first and loop.log[-2:] == ["committed", "seek 7"]


def test_an_abort_refused_on_a_sound_producer_still_ends_the_process(loop):
    loop.producer.failures["send_offsets_to_transaction"] = MOVED_ON
    loop.producer.failures["abort_transaction"] = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    with pytest.raises(KafkaException):
        _one_transaction(loop)


def test_a_fatal_commit_error_is_cured_by_a_new_producer_not_a_new_process(loop):
    first = loop.producer
    first.failures["commit_transaction"] = KafkaError(KafkaError.INVALID_TXN_STATE, "invalid", fatal=True)
    first.failures["abort_transaction"] = KafkaError(KafkaError.INVALID_TXN_STATE, "invalid", fatal=True)
    first.closing_fails = True  # a producer in a fatal state refuses to close as well
    _one_transaction(loop)
    assert loop.producer is not first and loop.log[-2:] == ["committed", "seek 7"]


@pytest.mark.parametrize("code", [KafkaError._FENCED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED])
def test_a_producer_fenced_by_a_newer_instance_or_refused_ends_the_process(loop, code):
    loop.producer.failures["commit_transaction"] = KafkaError(code, "no", fatal=True)
    with pytest.raises(KafkaException):
        _one_transaction(loop)
