"""Transactions safe without KIP-890 in the client: a producer whose ending call failed is replaced.

librdkafka does not implement KIP-890's transactions v2 (confluentinc/librdkafka#5423, open): a
request of a transaction that timed out on the client (``EndTxn``, a produce, ``AddOffsetsToTxn``)
may still reach the broker later and be applied inside the *next* transaction of the same producer
epoch: a late commit marker could commit a transaction before its offsets, a late produce could
land records of an aborted batch in a committed one. Bumping the epoch fences every such request.

So after ``send_offsets_to_transaction``, ``commit_transaction`` or ``abort_transaction`` fails with
anything but a clean abortable error (one that says the transaction must be aborted and that nothing
of it timed out), the scoring loop begins no other transaction on that producer: before the next one
it starts a new producer with the same transactional id, whose ``init_transactions`` bumps the epoch
(and aborts whatever the old one left open), then closes the old one. The rewind to the committed
offsets after an abort is as before; a retried commit that succeeded needs no rewind, only the new
epoch.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

__all__ = ["ENDING_CALLS", "TIMEOUTS", "must_exit", "needs_new_producer"]

ENDING_CALLS = frozenset({"send_offsets_to_transaction", "commit_transaction", "abort_transaction"})
"""The transactional calls whose failure can leave requests of the transaction in flight."""

TIMEOUTS = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT_QUEUE,
    }
)
"""Errors after which a request may still be on its way to the broker."""


def needs_new_producer(error: KafkaError) -> bool:
    """True unless ``error`` is a clean abortable one: the transaction must be aborted, and no request
    of it timed out (a consumer group that moved on, a record the broker refused)."""
    return not error.txn_requires_abort() or error.code() in TIMEOUTS


FENCED_OR_REFUSED = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
"""Errors no new producer of this process cures: another instance took the transactional id over (a
zombie must stop), or the principal may not use it."""


def must_exit(error: KafkaError) -> bool:
    """True when ``error`` ends the process rather than the producer: fenced by a newer instance, or
    refused. Any other failure of an ending call, fatal ones too, is cured by a new producer."""
    return error.code() in FENCED_OR_REFUSED
