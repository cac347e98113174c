"""Records too large to produce: a dead letter is cut to fit, saying so; a long key is refused at input."""

from __future__ import annotations

import orjson
import pytest
from fuzz.outcomes import make_pipeline, valid_events
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.contracts import DeadLetter
from stream.errors import DecodeError
from stream.messages import MAX_RECORD_BYTES, inbound
from stream.scoring.dead_letters import CUT_HEADER, fit_dead_letter, record_size
from stream.settings import Settings

BUDGET = MAX_RECORD_BYTES
VALID = orjson.dumps(valid_events(1)[0])


def _fit(value, key=b"k", headers=None, budget=BUDGET):
    msg = inbound(value, key, "events", 2, 77, 1_000, headers)
    return msg, fit_dead_letter(msg, DecodeError("message of many bytes exceeds the limit"), None, budget)


def _cut(headers):
    return dict(headers).get(CUT_HEADER, b"").decode()


def test_an_input_that_fits_is_copied_unchanged():
    msg, (key, value, headers) = _fit(b"x" * 1000, headers=[("h", b"v")])
    assert (key, value) == (msg.key(), msg.value()) and headers[0] == ("h", b"v")
    assert CUT_HEADER not in dict(headers)


def test_a_value_too_large_to_copy_is_cut_to_a_prefix_and_said_so():
    msg, (key, value, headers) = _fit(b"v" * 1_040_000)
    assert record_size(key, value, headers) <= BUDGET
    assert key == b"k" and msg.value().startswith(value) and len(value) > BUDGET - 2_000
    assert _cut(headers) == f"value: 1040000 bytes cut to {len(value)}"
    dl = DeadLetter.from_headers(headers)  # origin and reason kept
    assert (dl.topic, dl.partition, dl.offset, dl.stage) == ("events", 2, 77, "decode")
    assert dl.reason == "message of many bytes exceeds the limit"


def test_headers_too_large_to_copy_are_left_out_and_the_value_kept():
    big = [(f"h{i}", b"h" * 350_000) for i in range(3)]
    _, (key, value, headers) = _fit(VALID, headers=big)
    assert record_size(key, value, headers) <= BUDGET and value == VALID
    assert not any(name.startswith("h") for name, _ in headers)
    assert _cut(headers).startswith("headers: 3 of 1050")


def test_a_key_too_large_to_copy_is_cut():
    msg, (key, value, headers) = _fit(b"v", key=b"k" * 999_700)
    assert record_size(key, value, headers) <= BUDGET and msg.key().startswith(key) and value == b"v"
    assert _cut(headers).startswith("key: 999700 bytes cut to")


@settings(max_examples=60, deadline=None)
@given(
    key=st.integers(0, 1_200_000),
    value=st.integers(0, 1_200_000),
    header=st.integers(0, 600_000),
    budget=st.integers(65_536, 2_000_000),
)
def test_every_dead_letter_fits_its_budget_and_keeps_prefixes(key, value, header, budget):
    msg, (k, v, headers) = _fit(b"v" * value, key=b"k" * key, headers=[("a", b"a" * header)], budget=budget)
    assert record_size(k, v, headers) <= budget
    assert msg.key().startswith(k) and msg.value().startswith(v)
    assert DeadLetter.from_headers(headers).offset == 77
    uncut = fit_dead_letter(msg, DecodeError("message of many bytes exceeds the limit"), None, 1 << 40)
    assert (CUT_HEADER in dict(headers)) == (record_size(*uncut) > budget)


def test_an_event_whose_key_is_too_long_for_a_prediction_is_a_dead_letter():
    pipeline = make_pipeline(max_key_bytes=1_000)
    batch = [inbound(VALID, b"k" * 1_000, "events", 0, 0), inbound(VALID, b"k" * 1_001, "events", 0, 1)]
    result = pipeline.process(batch)
    assert result.scored == 1 and result.dead_letters == {"decode": 1}
    dead = [r for r in result.records if r.topic == pipeline.topics.dead_letters]
    assert len(dead) == 1 and dead[0].key == b"k" * 1_001
    reason = DeadLetter.from_headers(dead[0].headers).reason
    assert reason == "key of 1001 bytes exceeds the 1000-byte limit (STREAMSCORE_MAX_KEY_BYTES)"


def test_the_key_limit_leaves_room_for_the_prediction():
    with pytest.raises(ValueError, match="STREAMSCORE_MAX_KEY_BYTES=950000 leaves no room"):
        Settings(max_key_bytes=950_000, max_record_bytes=960_000)
    assert Settings(max_key_bytes=100_000).max_record_bytes == BUDGET
