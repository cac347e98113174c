"""Recorded reason codes against the contributions computed again; explain's lines of contributions."""

from __future__ import annotations

import datetime as dt

import pytest

from stream.audit.explain import Explanation, render
from stream.audit.reasons import difference
from stream.audit.verify import VerifyReport
from stream.audit.verify import render as render_verify

COMPUTED = {"salary": 0.5, "age": -1.25, "car": 0.0625, "loan": -0.25}
RECORDED = {"age": -1.25, "salary": 0.5, "loan": -0.25}


def test_the_k_largest_recorded_bit_exactly_pass():
    assert difference(RECORDED, COMPUTED, 3) is None
    assert difference({**RECORDED, "car": 0.0625}, COMPUTED, 9) is None, "K above the features: all"


@pytest.mark.parametrize(
    ("recorded", "k", "says"),
    [
        (
            {**RECORDED, "age": -1.2500000000000002},
            3,
            "reasons.age: prediction -1.2500000000000002, re-scored -1.25",
        ),
        ({"age": -1.25, "salary": 0.5, "colour": 0.1}, 3, "reasons.colour: the prediction names a feature"),
        ({"age": -1.25, "salary": 0.5}, 3, "the prediction gives 2, STREAMSCORE_REASONS=3 asks for 3"),
        ({"salary": 0.5, "age": -1.25, "loan": -0.25}, 3, "not in order of magnitude"),
        (
            {"age": -1.25, "salary": 0.5, "car": 0.0625},
            3,
            "loan (contribution -0.25) is larger than a reason",
        ),
    ],
    ids=["tampered-value", "unknown-feature", "one-missing", "out-of-order", "not-the-largest"],
)
def test_each_kind_of_wrong_reason_is_named(recorded, k, says):
    found = difference(recorded, COMPUTED, k)
    assert found is not None and says in found


def test_a_negative_zero_is_not_a_zero():
    assert difference({"x": -0.0}, {"x": 0.0}, 1) is not None


def _explanation(**kw) -> Explanation:
    when = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    return Explanation(
        outcome="scored", event_id="e1", input={"topic": "t", "partition": 0, "offset": 3, "timestamp_ms": 1},
        envelope={"event_id": "e1", "occurred_at": when, "entity_id": None}, record="provenance[0]@7",
        features={"salary": 1.0, "age": 30.0}, model={"name": "m", "version": "1", "sha256": "ab" * 32},
        role="champion", code={"version": "0", "revision": None, "worker_id": "w"},
        times={"received_at": when, "scored_at": when, "emitted_at": when}, score_then=0.5, score_now=0.5,
        label_now="yes", bit_exact=True, **kw,
    )  # fmt: skip


def test_explain_shows_every_contribution_between_the_expected_value_and_the_margin():
    text = render(_explanation(contributions={"age": -1.25, "salary": 0.5}, expected_value=0.75, margin=0.0))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("reasons"))
    assert "expected value 0.75" in lines[start]
    assert lines[start + 1].split() == ["age", "-1.25"] and lines[start + 2].split() == ["salary", "+0.5"]
    assert "margin 0.0" in lines[start + 3]


def test_explain_says_in_one_line_why_a_model_cannot_be_explained_and_shows_the_rest():
    text = render(_explanation(unexplained="the model cannot be explained: no attribution in its card"))
    assert (
        text.splitlines()[-1] == "reasons    none: the model cannot be explained: no attribution in its card"
    )
    assert "bit-exact" in text and "features   salary=1.0" in text


def test_verify_names_the_predictions_whose_reasons_it_checked():
    report = VerifyReport(records=5, sampled=5, exact=5, mismatched=[], unverifiable=[], reasons=4)
    assert render_verify(report).endswith("0 unverifiable; reason codes bit-exact on 4 predictions")
    plain = VerifyReport(records=5, sampled=5, exact=5, mismatched=[], unverifiable=[])
    assert render_verify(plain).endswith("0 unverifiable")
