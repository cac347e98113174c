"""Fuzzing the hot path: whatever arrives, every message has exactly one outcome and nothing raises.

The inputs: random bytes; random JSON documents; valid events with tokens spliced in that no JSON
encoder writes (NaN, Infinity, numbers beyond float64 or float32, leading zeros); strings holding
lone surrogates, NUL, overlong or truncated UTF-8, a BOM; deep nesting; random byte edits of valid
events; registered Avro messages of any block counts and lengths (in a bound on memory). A short run
is part of the unit tests; ``-m chaos`` (or ``STREAMSCORE_CHAOS=1``) runs a long one of
``STREAMSCORE_FUZZ_EXAMPLES`` batches.
"""

from __future__ import annotations

import json
import os
import tracemalloc

import orjson
import pytest
from fuzz.outcomes import (
    avro_message,
    avro_seeds,
    check,
    make_avro_pipeline,
    make_pipeline,
    outcome,
    seeds,
    valid_events,
    zigzag,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

EVENTS = valid_events(20)
FEATURES = sorted(EVENTS[0]["features"])
HOLE = "@@hole@@"

NUMBER_TOKENS = [
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1e-999", b"9" * 400, b"-" + b"9" * 40,
    b"3.4028235e38", b"3.4028236e38", b"-0", b"-0.0", b"01", b"1.", b".5", b"+1", b"0x10", b"1_000",
    b"true", b"null", b'"1"', b"[]", b"{}", b"[1]", b'{"a":1}',
]  # fmt: skip
STRING_PIECES = [
    b"\\ud800", b"\\udfff", b"\\udc00\\ud800", b"\\ud83d\\ude00", b"\\u0000", b"\x00", b"\x1f", b"\xc0\xaf",
    b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xff", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\\",
    b'\\"', b"\\x41", "é".encode(), "\U0001f600".encode(), b"\xe2\x80\xae", b"\\u202e", b"a" * 300,
]  # fmt: skip

_event = st.sampled_from(EVENTS)


@st.composite
def _number_spliced(draw: st.DrawFn) -> bytes:
    """A valid event with a raw token where one feature's number was."""
    event = draw(_event)
    name = draw(st.sampled_from([*FEATURES, "extra"]))
    doc = orjson.dumps({**event, "features": {**event["features"], name: HOLE}})
    return doc.replace(f'"{HOLE}"'.encode(), draw(st.sampled_from(NUMBER_TOKENS)))


@st.composite
def _string_spliced(draw: st.DrawFn) -> bytes:
    """A valid event with edge-case bytes inside one of its strings (ids, a feature name, a value)."""
    event = dict(draw(_event))
    where = draw(st.sampled_from(["event_id", "entity_id", "name", "value", "occurred_at"]))
    if where == "name":
        event["features"] = {**event["features"], f"x{HOLE}": 1}
    elif where == "value":
        event["features"] = {**event["features"], draw(st.sampled_from(FEATURES)): HOLE}
    else:
        event[where] = event[where][: draw(st.integers(0, 8))] + HOLE
    pieces = draw(st.lists(st.sampled_from(STRING_PIECES), min_size=1, max_size=3))
    return orjson.dumps(event).replace(HOLE.encode(), b"".join(pieces))


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid event with a few random bytes replaced, inserted or deleted."""
    data = bytearray(orjson.dumps(draw(_event)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        if op == "delete":
            del data[at]
        else:
            byte = draw(st.integers(0, 255))
            data[at : at + (op == "replace")] = bytes([byte])
    return bytes(data)


@st.composite
def _nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(0, 3_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    inner = opener * depth + b"1" + (closer * depth if draw(st.booleans()) else b"")
    if draw(st.booleans()):
        return inner
    return orjson.dumps({**draw(_event), "features": HOLE}).replace(f'"{HOLE}"'.encode(), inner)


_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4)
)
_json_text = _json.map(lambda doc: json.dumps(doc).encode())  # stdlib: writes NaN and Infinity
_envelope = st.builds(
    lambda event, patch: json.dumps({**event, **patch}).encode(),
    _event,
    st.dictionaries(st.sampled_from(["event_id", "occurred_at", "entity_id", "features", "extra"]), _json),
)

MESSAGE = st.one_of(
    st.binary(max_size=300),
    st.none(),
    _json_text,
    _envelope,
    _number_spliced(),
    _string_spliced(),
    _mutated(),
    _nested(),
    _event.map(orjson.dumps),
)
BATCH = st.lists(MESSAGE, min_size=1, max_size=8)


@pytest.fixture(scope="module")
def pipeline():
    return make_pipeline()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=BATCH)
def test_every_input_has_exactly_one_outcome(pipeline, values):
    _fuzz(pipeline, values)


@pytest.mark.chaos
@settings(
    max_examples=int(os.environ.get("STREAMSCORE_FUZZ_EXAMPLES", "10000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(values=BATCH)
def test_every_input_has_exactly_one_outcome_long(pipeline, values):
    _fuzz(pipeline, values)


def _fuzz(pipeline, values):
    for kind in check(pipeline, values):
        event(kind)  # the share of each outcome shows with --hypothesis-show-statistics


def test_the_fuzzer_seeds_hold_the_invariant(pipeline):
    check(pipeline, seeds())


EVENT = orjson.dumps(EVENTS[0])


@pytest.mark.parametrize(
    ("value", "stage", "reason"),
    [
        (EVENT, "scored", ""),
        (b"\xef\xbb\xbf" + EVENT, "decode", "not valid JSON"),  # a BOM: RFC 8259 lets parsers refuse it
        (EVENT.replace(b'"event_id":"', b'"event_id":"\\ud800', 1), "decode", "not valid JSON"),
        (EVENT.replace(b'"event_id":"', b'"event_id":"\xed\xa0\x80', 1), "decode", "not valid JSON"),
        (EVENT.replace(b'"event_id":"', b'"event_id":"\xc0\xaf', 1), "decode", "not valid JSON"),
        (EVENT.replace(b'"event_id":"', b'"event_id":"\x00', 1), "decode", "control character"),
        (EVENT.replace(b'"loan":', b'"loan":NaN,"x":', 1), "features", "finite float32"),
        (EVENT.replace(b'"loan":', b'"loan":-Infinity,"x":', 1), "features", "finite float32"),
        (EVENT.replace(b'"loan":', b'"loan":1e999,"x":', 1), "features", "finite float32"),
        (EVENT.replace(b'"loan":', b'"loan":' + b"9" * 400 + b',"x":', 1), "features", "float32 range"),
        (EVENT.replace(b'"loan":', b'"loan":' + b"9" * 5000 + b',"x":', 1), "decode", "number out of range"),
        (EVENT.replace(b'"loan":', b'"loan":01,"x":', 1), "decode", "not valid JSON"),
    ],
    ids=[
        "valid", "bom", "lone-surrogate-escape", "surrogate-utf8", "overlong-utf8", "raw-nul", "nan",
        "minus-infinity", "1e999", "400-digit-int", "5000-digit-int", "leading-zero",
    ],
)  # fmt: skip
def test_edge_cases_have_the_expected_outcome(pipeline, value, stage, reason):
    got_stage, got_reason = outcome(pipeline, value)
    assert got_stage == stage and reason in got_reason


AVRO_COUNTS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([127, 128, 19_990, -19_990, 2**26, -(2**26), 2**31, 2**62, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
AVRO_TOKENS = st.lists(st.one_of(AVRO_COUNTS.map(zigzag), st.binary(max_size=8)), max_size=32).map(b"".join)
AVRO_SEEDS = avro_seeds()
AVRO_PEAK = 64 * 2**20
"""Generous: a batch of eight messages of up to 64 KiB; a block bomb makes hundreds of MiB."""


@st.composite
def _avro_spliced(draw: st.DrawFn) -> bytes:
    """A valid Avro event of any schema with block counts, lengths or bytes put in anywhere."""
    data = bytearray(draw(st.sampled_from(AVRO_SEEDS[:3])))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(5, len(data)))
        data[at : at + draw(st.integers(0, 2))] = draw(AVRO_TOKENS)
    return bytes(data)


AVRO_MESSAGE = st.one_of(
    st.builds(avro_message, st.integers(1, 4), AVRO_TOKENS),
    _avro_spliced(),
    st.sampled_from(AVRO_SEEDS),
    st.binary(max_size=300).map(lambda b: b"\x00" + b),
)


@pytest.fixture(scope="module")
def avro_pipeline():
    return make_avro_pipeline()


AVRO_BATCH = st.lists(AVRO_MESSAGE, min_size=1, max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=AVRO_BATCH)
def test_every_avro_input_has_exactly_one_outcome_in_bounded_memory(avro_pipeline, values):
    _fuzz_bounded(avro_pipeline, values)


@pytest.mark.chaos
@settings(
    max_examples=int(os.environ.get("STREAMSCORE_FUZZ_EXAMPLES", "10000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(values=AVRO_BATCH)
def test_every_avro_input_has_exactly_one_outcome_in_bounded_memory_long(avro_pipeline, values):
    _fuzz_bounded(avro_pipeline, values)


def _fuzz_bounded(pipeline, values):
    tracemalloc.start()
    try:
        _fuzz(pipeline, values)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < AVRO_PEAK, f"{peak / 2**20:.0f} MiB"


def test_the_avro_seeds_have_the_expected_outcomes(avro_pipeline):
    got = [outcome(avro_pipeline, value) for value in AVRO_SEEDS]
    assert [stage for stage, _ in got] == ["scored", "schema", "schema", *["decode"] * 4]
    assert all("more than the" in reason for _, reason in got[3:6]), got
    assert "nested more than" in got[6][1]
