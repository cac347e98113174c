"""The audit package's pure parts: times and offsets, the first differing field, a replay's end bound."""

from __future__ import annotations

import datetime as dt

import pytest
from confluent_kafka import TopicPartition

from stream.audit.errors import AuditError
from stream.audit.lookup import parse_offsets, parse_time
from stream.audit.replay import EndBound, progress
from stream.audit.rescore import first_difference
from stream.messages import inbound

NOW = dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T03:00:00Z", NOW - 3600),
        ("2026-11-30T05:00:00+02:00", NOW - 3600),
        ("2026-11-30T03:00:00", NOW - 3600),  # no offset: UTC
        ("90m", NOW - 5400),
        ("2d", NOW - 2 * 86_400),
        ("1.5h", NOW - 5400),
    ],
)
def test_times_are_iso_8601_or_ages(text, expected):
    assert parse_time(text, now=NOW) == int(expected * 1000)


@pytest.mark.parametrize("text", ["yesterday", "5 parsecs", ""])
def test_an_unreadable_time_says_what_to_give(text):
    with pytest.raises(AuditError, match="give an ISO 8601 time"):
        parse_time(text, now=NOW)


def test_offsets_are_partition_offset_pairs():
    assert parse_offsets("0:100, 2:7") == {0: 100, 2: 7}
    for bad in ("0-100", "a:1", ""):
        with pytest.raises(AuditError, match="PARTITION:OFFSET"):
            parse_offsets(bad)


def test_the_first_differing_field_follows_the_rebuilt_record_order():
    now = {"event_id": "e", "score": 0.5, "input": {"offset": 3}, "personal": {"zip": "aa"}}
    assert first_difference(now, now) is None
    assert first_difference({**now, "score": 0.25}, now) == "score"
    assert first_difference({**now, "input": {"offset": 4}, "score": 0.1}, now) == "score"
    assert first_difference({**now, "input": {"offset": 4}}, now) == "input.offset"
    assert first_difference({**now, "personal": {}}, now) == "personal.zip"
    assert first_difference({**now, "extra": 1}, now) == "extra", "a field the record should not have"


class _Committed:
    def __init__(self, offsets):
        self.offsets = offsets

    def committed(self, tps, timeout):
        return [TopicPartition(tp.topic, tp.partition, self.offsets[tp.partition]) for tp in tps]


def test_the_end_bound_keeps_offsets_before_each_end_and_is_done_once_committed_there():
    bound = EndBound("t", {0: 3, 1: 0})
    batch = [inbound(b"x", topic="t", partition=p, offset=o) for p, o in ((0, 1), (0, 2), (0, 3), (1, 0))]
    assert [(m.partition(), m.offset()) for m in bound.clip(batch)] == [(0, 1), (0, 2)]
    assert not bound.done(_Committed({0: 2, 1: -1001}))
    assert bound.done(_Committed({0: 3, 1: -1001})), "partition 1's range is empty, and it was read past"
    late = EndBound("t", {0: 10})
    late.clip([inbound(b"x", topic="t", partition=0, offset=o) for o in (7, 11)])  # 8, 9: transaction markers
    assert not late.done(_Committed({0: 7})) and late.done(_Committed({0: 8}))


def test_progress_says_rate_and_eta():
    assert progress(2_000, 10_000, 2.0) == "replayed 2,000 of 10,000 events (20%)  1,000 events/s  ETA 8 s"
    assert progress(0, 0, 0.0) == "replayed 0 of 0 events  0 events/s"


def test_verify_counts_results_in_its_metrics_and_lists_at_most_20_findings_of_a_kind():
    from stream.audit.verify import Finding, VerifyMetrics, VerifyReport, render

    findings = [
        Finding(event_id=f"e{i}", record=f"provenance[0]@{i}", detail="score: ...") for i in range(23)
    ]
    report = VerifyReport(records=100, sampled=50, exact=27, mismatched=findings, unverifiable=[])
    metrics = VerifyMetrics()
    metrics.observe(report)
    metrics.observe(report.model_copy(update={"mismatched": []}))
    value = metrics.registry.get_sample_value
    assert value("streamscore_verify_records_total", {"result": "exact"}) == 54
    assert value("streamscore_verify_records_total", {"result": "mismatched"}) == 23
    assert value("streamscore_verify_last_mismatched") == 0
    lines = render(report).splitlines()
    assert len(lines) == 22 and lines[20] == "... and 3 more mismatch records (--json lists them all)"
    assert lines[-1] == (
        "verified 50 of 100 provenance records: 27 bit-exact (54.0%), 23 mismatched, 0 unverifiable"
    )
