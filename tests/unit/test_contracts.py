"""The Event and Outcome contracts against hostile ids and times: control characters in an id, and
times no epoch-seconds float can carry, are refused at stage "schema"; ordinary Unicode is not."""

from __future__ import annotations

import datetime as dt
import sys
import unicodedata

import orjson
import pytest
from fuzz.outcomes import check, make_pipeline, outcome, valid_events

from stream.contracts import Event, Outcome
from stream.errors import SchemaError
from stream.scoring.codec import BatchDecoder, decode

CONTROL = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cc"]
EVENT = valid_events(1)[0]


@pytest.fixture(scope="module")
def pipeline():
    return make_pipeline()


def _event(**changes: object) -> bytes:
    return orjson.dumps({**EVENT, **changes})


def test_the_control_characters_are_c0_del_and_c1():
    assert len(CONTROL) == 65 and {"\0", "\r", "\n", "\x1b", "\x7f", "\x9b"} <= set(CONTROL)


@pytest.mark.parametrize("field", ["event_id", "entity_id"])
def test_every_control_character_in_an_id_is_refused_with_its_reason(field):
    for char in CONTROL:
        for value in (char, f"id-{char}", f"{char}[2K\rforged"):
            with pytest.raises(SchemaError) as refused:
                decode(_event(**{field: value}), 65_536)
            reason = str(refused.value)
            assert reason.startswith(f"{field}: ") and "control character" in reason, (repr(value), reason)
            assert not any(c in reason for c in CONTROL), "the reason itself is printable"


def test_the_batch_decoder_refuses_them_and_keeps_the_others():
    values = [_event(event_id=f"ok-{i}") for i in range(4)]
    values[1] = _event(event_id="a\x00b")
    values[2] = _event(entity_id="x\x9b31m")
    decoded = BatchDecoder(65_536)(values)
    assert [type(d) for d in decoded] == [Event, SchemaError, SchemaError, Event]
    assert [d.event_id for d in decoded if isinstance(d, Event)] == ["ok-0", "ok-3"]


@pytest.mark.parametrize(
    "value",
    ["café-7", "申请-18231", "🙂", "a b", "tab\\t", "nbsp\u00a0", "zwj\u200d", "rtl\u202e", "sep\u2028", "ÿ"],
)
def test_ordinary_unicode_in_ids_is_accepted(value):
    event = decode(_event(event_id=value, entity_id=value), 65_536)
    assert event.event_id == event.entity_id == value


def test_an_outcome_id_with_a_control_character_is_refused():
    good = {"event_id": "e-1", "positive": True, "observed_at": "2026-01-01T00:00:00Z"}
    assert decode(orjson.dumps(good), 65_536, Outcome).event_id == "e-1"
    with pytest.raises(SchemaError, match="control character"):
        decode(orjson.dumps({**good, "event_id": "e\x1b-1"}), 65_536, Outcome)


def test_in_the_pipeline_they_are_dead_letters_and_the_events_after_them_are_scored(pipeline):
    values = [
        _event(event_id="before"),
        _event(event_id="\x1b[1A\x1b[2Kscore then 1.0"),
        _event(event_id="after"),
    ]
    assert check(pipeline, values) == ["scored", "schema", "scored"]
    stage, reason = outcome(pipeline, _event(entity_id="a\rb"))
    assert stage == "schema" and reason.startswith("entity_id: ") and "control character" in reason


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00-01:00",
        "9999-12-31T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59+01:00",
        "1970-01-01T00:00:00Z",
    ],
)
def test_far_times_an_epoch_float_carries_are_accepted(pipeline, when):
    event = decode(_event(occurred_at=when), 65_536)
    seconds = event.occurred_at.timestamp()
    assert dt.datetime.fromtimestamp(seconds, dt.UTC) == event.occurred_at, "the epoch float round-trips"
    assert outcome(pipeline, _event(occurred_at=when))[0] == "scored"


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.5Z", "9999-12-31T23:59:59.999999Z"]
)
def test_times_outside_what_an_epoch_float_carries_are_refused(pipeline, when):
    stage, reason = outcome(pipeline, _event(occurred_at=when))
    assert stage == "schema" and reason.startswith("occurred_at: "), reason
    assert "0001-01-01T00:00:00Z" in reason or "9999-12-31T23:59:59Z" in reason, reason
