"""Batch validation and batch feature reading give, for every value, exactly what doing it alone gives."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from conftest import MODELS
from fuzz.outcomes import valid_events
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.errors import PoisonEvent
from stream.scoring import codec
from stream.scoring.codec import JSON_MAX_DEPTH, BatchDecoder, decode
from stream.scoring.features import FeatureReader
from stream.scoring.model import load

MAX_BYTES = 4096
EVENTS = [orjson.dumps(e) for e in valid_events(8)]
OPEN_FEATURES = orjson.dumps({**valid_events(1)[0], "features": {"y": 1}})[:-2]  # ends in {"y":1


def _alone(value):
    try:
        return decode(value, MAX_BYTES)
    except PoisonEvent as exc:
        return exc


def _same(got, values):
    """Each result equals the value's own: the same event, or the same kind of refusal and reason."""
    expected = [_alone(v) for v in values]
    assert [type(g) for g in got] == [type(e) for e in expected]
    assert [str(g) if isinstance(g, PoisonEvent) else g for g in got] == [
        str(e) if isinstance(e, PoisonEvent) else e for e in expected
    ]


def test_a_clean_batch_is_validated_in_one_call(monkeypatch):
    calls = []
    monkeypatch.setattr(codec, "decode", lambda *a: calls.append(a) or decode(*a))
    got = BatchDecoder(MAX_BYTES)(EVENTS)
    _same(got, EVENTS)
    assert not calls


def test_messages_that_are_not_json_alone_cannot_pass_by_joining_their_neighbours():
    """The first is event A followed by the start of B; the second closes B. Joined, they parse."""
    a = orjson.loads(EVENTS[0])
    b = {**orjson.loads(EVENTS[1]), "features": {"age": "@"}}
    first, second = orjson.dumps(b).split(b'"@"')
    values = [orjson.dumps(a) + b"," + first + b"[{}", b"{}]" + second, EVENTS[2]]
    assert orjson.loads(b"[" + b",".join(values[:2]) + b"]"), "the pair joins into valid JSON"
    got = BatchDecoder(MAX_BYTES)(values)
    _same(got, values)
    assert [type(g).__name__ for g in got] == ["DecodeError", "DecodeError", "Event"]


@pytest.mark.parametrize(
    "values",
    [
        [EVENTS[0] + b',"x":' + EVENTS[1], EVENTS[2]],  # joined: one member too many
        [EVENTS[0] + b',"x":' + OPEN_FEATURES, EVENTS[1] + b"}}"],  # joined: the second member in "x"
    ],
    ids=["extra-member", "swallowed-member"],
)
def test_members_written_by_messages_are_not_taken_for_the_decoders_own(values):
    got = BatchDecoder(MAX_BYTES)(values)
    _same(got, values)
    assert type(got[0]).__name__ == "DecodeError"


def _nested(depth):
    inner = b"[" * (depth - 2) + b"]" * (depth - 2)
    return orjson.dumps({**orjson.loads(EVENTS[0]), "features": {"deep": "@"}}).replace(b'"@"', inner)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        b"x" * (MAX_BYTES + 1),
        b"{not json",
        b'{"event_id":"e"}',
        b"[]",
        b"",
        b" ",
        _nested(JSON_MAX_DEPTH),
    ],
    ids=["tombstone", "too-large", "not-json", "schema", "array", "empty", "blank", "deepest-allowed"],
)
def test_one_refused_value_gets_its_own_reason_and_the_others_their_events(bad):
    values = [EVENTS[0], bad, EVENTS[1]]
    _same(BatchDecoder(MAX_BYTES)(values), values)


def test_after_poison_values_are_validated_alone_until_a_batch_is_clean(monkeypatch):
    calls = []
    monkeypatch.setattr(codec, "decode", lambda *a: calls.append(a) or decode(*a))
    decoder = BatchDecoder(MAX_BYTES)
    counts = []
    for batch in ([EVENTS[0], b"{"], EVENTS[:3], EVENTS[:3], [b"{"], EVENTS[:2], EVENTS[:2]):
        calls.clear()
        _same(decoder(batch), batch)
        counts.append(len(calls))
    assert counts == [2, 3, 0, 1, 2, 0]


@st.composite
def _cut_up(draw):
    """Valid events joined by commas, then cut at random places: pieces that may join back into events."""
    joined = b",".join(draw(st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4)))
    cuts = sorted(draw(st.lists(st.integers(0, len(joined)), max_size=4)))
    pieces = [joined[i:j] for i, j in zip([0, *cuts], [*cuts, len(joined)], strict=True)]
    extra = draw(st.lists(st.sampled_from([*EVENTS[:2], b"]", b"[", b"}", b"{", b","]), max_size=2))
    return draw(st.permutations(pieces + extra))


@settings(max_examples=300, deadline=None)
@given(values=_cut_up())
def test_any_cut_of_joined_events_gives_what_each_piece_gives_alone(values):
    _same(BatchDecoder(MAX_BYTES)(values), values)


READER = FeatureReader(load(MODELS, "loan-approval").card.features, max_features=12, max_string_length=16)
FEATURES = valid_events(1)[0]["features"]
F32_MAX = 3.4028234663852886e38
_value = st.one_of(
    st.floats(),
    st.integers(),
    st.sampled_from(
        [2**53, 2**53 + 1, -(2**53) - 1, int(F32_MAX), int(F32_MAX) + 2**104, 10**400, 30.0, -0.0]
    ),
    st.sampled_from(
        [F32_MAX, -F32_MAX, 3.4028235e38, 1e300, 9e15, 0.5, True, False, None, "1", "x" * 20, [1], {}]
    ),
)


@st.composite
def _features(draw):
    features = dict(draw(st.sampled_from(valid_events(5)))["features"])
    for name in draw(st.lists(st.sampled_from(sorted(FEATURES)), max_size=3)):
        features[name] = draw(_value)
    for name in draw(st.lists(st.sampled_from(sorted(FEATURES)), max_size=1)):
        del features[name]
    features.update(draw(st.dictionaries(st.sampled_from(["extra", "y" * 20]), _value, max_size=2)))
    return features


def _row_alone(features):
    try:
        return np.array([READER.row(features)[0]], dtype=np.float32)[0], None
    except PoisonEvent as exc:
        return np.zeros(len(FEATURES), np.float32), str(exc)


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(_features(), min_size=1, max_size=6))
def test_rows_of_a_batch_are_what_each_row_gives_alone(batch):
    x, _, errors, _ = READER.rows(batch)
    assert x.dtype == np.float32 and x.shape == (len(batch), len(FEATURES))
    for features, row, error in zip(batch, x, errors, strict=True):
        expected_row, expected_error = _row_alone(features)
        assert (None if error is None else str(error)) == expected_error
        assert row.tobytes() == expected_row.tobytes()
