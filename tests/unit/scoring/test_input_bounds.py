"""Input bounds: each is a dead letter naming the bound, and none lets a message cost much."""

from __future__ import annotations

import json
import time

import orjson
import pytest
from fuzz.outcomes import make_pipeline, outcome, valid_events

from stream.contracts import MAX_FEATURES
from stream.errors import ModelError
from stream.scoring.codec import JSON_MAX_DEPTH

MAX_BYTES = 1 << 20


def _pipeline(max_message_bytes=MAX_BYTES, **limits):
    return make_pipeline(max_message_bytes=max_message_bytes, **limits)


@pytest.fixture(scope="module")
def pipeline():
    return _pipeline(max_features=16, max_string_length=64)


EVENT = valid_events(1)[0]


def _with_features(**extra):
    return json.dumps({**EVENT, "features": {**EVENT["features"], **extra}}).encode()  # big ints too


def _nested_in_features(depth):
    """An event whose document nests ``depth`` levels (the event and its features are two)."""
    inner = b"[" * (depth - 2) + b"]" * (depth - 2)
    return orjson.dumps({**EVENT, "features": {"deep": "@"}}).replace(b'"@"', inner)


def test_the_parser_depth_limit_is_what_the_codec_says(pipeline):
    assert outcome(pipeline, _nested_in_features(JSON_MAX_DEPTH))[0] == "features"
    stage, reason = outcome(pipeline, _nested_in_features(JSON_MAX_DEPTH + 1))
    assert (
        stage == "decode"
        and reason == f"JSON nested more than {JSON_MAX_DEPTH} levels deep: the parser stops at that depth"
    )


@pytest.mark.parametrize(
    "value",
    [b"[" * 1_000_000, b"[" * 500_000 + b"]" * 500_000, b'{"a":' * 170_000, _nested_in_features(500_000)],
    ids=["1M-open", "1M-closed", "170k-objects", "500k-in-features"],
)
def test_deep_nesting_costs_little_whatever_the_depth(pipeline, value):
    assert len(value) <= MAX_BYTES
    started = time.perf_counter()
    stage, reason = outcome(pipeline, value)
    elapsed = time.perf_counter() - started
    assert (stage, reason.split(":")[0]) == ("decode", f"JSON nested more than {JSON_MAX_DEPTH} levels deep")
    assert elapsed < 0.05, f"{elapsed * 1e3:.1f} ms for a {len(value)}-byte nested message"


def test_message_size_is_checked_before_parsing():
    small = _pipeline(max_message_bytes=1024)
    stage, reason = outcome(small, b"[" * 2048)
    assert stage == "decode" and reason == "message of 2048 bytes exceeds the 1024-byte limit"


def test_too_many_features_is_named_before_they_are_read(pipeline):
    extra = {f"x{i}": i for i in range(8)}
    assert outcome(pipeline, _with_features(**extra)) == (
        "features",
        "17 features: more than the limit of 16",
    )
    within = _with_features(**dict(list(extra.items())[:7]))
    assert outcome(pipeline, within) == ("scored", "")  # features no model reads are ignored
    strict = _pipeline(max_features=16, max_string_length=64, strict_fields=True)
    assert outcome(strict, within)[1] == "unknown features ['x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6']"


def test_long_strings_are_named(pipeline):
    assert outcome(pipeline, _with_features(**{"n" * 65: 1})) == (
        "features",
        "a feature name of 65 characters: longer than the limit of 64",
    )
    assert outcome(pipeline, _with_features(loan="x" * 65)) == (
        "features",
        "feature 'loan' is a string of 65 characters: longer than the limit of 64",
    )
    assert (
        outcome(pipeline, _with_features(loan="x" * 64))[1]
        == "feature 'loan' is a string: a number is required"
    )
    stage, reason = outcome(pipeline, orjson.dumps({**EVENT, "event_id": "e" * 257}))
    assert stage == "schema" and reason.startswith("event_id: String should have at most 256 characters")


def test_a_valid_event_within_the_bounds_is_scored(pipeline):
    assert outcome(pipeline, orjson.dumps(EVENT))[0] == "scored"


def test_personal_values_never_appear_in_a_reason(pipeline):
    """zipcode is personal in the shipped card: its reasons say so instead of showing the value."""
    for value in (1e39, 10**40, 3.5):
        stage, reason = outcome(pipeline, _with_features(zipcode=value))
        assert stage == "features" and "'zipcode' is a personal value" in reason
        assert str(value) not in reason and repr(value) not in reason
    assert "1e+39" in outcome(pipeline, _with_features(loan=1e39))[1], "other values are shown"


def test_a_card_beyond_the_feature_bound_cannot_be_served():
    with pytest.raises(
        ModelError, match="9 features, more than the limit of 8: raise STREAMSCORE_MAX_FEATURES"
    ):
        _pipeline(max_features=8)
    assert MAX_FEATURES >= 9
