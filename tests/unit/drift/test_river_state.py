"""River's detectors to numbers and back: exact, so a restored detector fires where the original does.

These read River's private layout; they fail first when a River release changes it."""

from __future__ import annotations

import random

import pytest
from river.drift import ADWIN, PageHinkley

from stream.drift.river_state import (
    AdwinState,
    PageHinkleyState,
    adwin_from_state,
    adwin_state,
    page_hinkley_from_state,
    page_hinkley_state,
)


def _stream(seed: int, n: int = 8_000, shift_at: int = 4_000) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(0.0 if i < shift_at else 0.6, 1.0) for i in range(n)]


def _fires(detector, values) -> list[int]:
    out = []
    for i, x in enumerate(values):
        detector.update(x)
        if detector.drift_detected:
            out.append(i)
    return out


@pytest.mark.parametrize("cut", [0, 1, 7, 33, 2_000, 4_050])
def test_adwin_round_trip_is_exact(cut):
    data = _stream(1)
    original = ADWIN()
    _fires(original, data[:cut])
    saved = AdwinState.model_validate_json(adwin_state(original).model_dump_json())
    restored = adwin_from_state(saved)
    assert restored._helper.__getstate__() == original._helper.__getstate__(), "the same Rust state"
    figures = ("width", "total", "variance", "n_detections")
    assert [getattr(restored, f) for f in figures] == [getattr(original, f) for f in figures]
    after = _fires(restored, data[cut:])
    assert after == _fires(original, data[cut:])
    assert after, "the shift is detected by both"


def test_adwin_restored_right_after_a_detection_resets_as_the_original_does():
    data = _stream(2)
    original = ADWIN()
    first = _fires(original, data)[0]
    original = ADWIN()
    _fires(original, data[: first + 1])
    assert original.drift_detected
    restored = adwin_from_state(AdwinState.model_validate_json(adwin_state(original).model_dump_json()))
    assert restored.drift_detected
    assert _fires(restored, data[first + 1 :]) == _fires(original, data[first + 1 :])


def test_adwin_buckets_must_fit_the_detector():
    original = ADWIN()
    _fires(original, _stream(3, n=500))
    state = adwin_state(original).model_dump()
    state["buckets"][0]["totals"] = state["buckets"][0]["totals"][:-1]
    with pytest.raises(ValueError, match="slots"):
        adwin_from_state(AdwinState.model_validate(state))
    state = adwin_state(original).model_dump()
    state["buckets"][0]["used"] = 6
    with pytest.raises(ValueError):  # width no longer matches, or too many in use
        adwin_from_state(AdwinState.model_validate(state))


@pytest.mark.parametrize("cut", [0, 10, 29, 30, 3_000])
def test_page_hinkley_round_trip_is_exact(cut):
    data = _stream(4, n=6_000, shift_at=3_500)

    def make() -> PageHinkley:
        return PageHinkley(min_instances=30, delta=0.05, threshold=20.0)

    original = make()
    _fires(original, data[:cut])
    json = page_hinkley_state(original).model_dump_json()  # min_increase is +inf before the first update
    restored = page_hinkley_from_state(PageHinkleyState.model_validate_json(json), make())
    assert page_hinkley_state(restored) == page_hinkley_state(original)
    after = _fires(restored, data[cut:])
    assert after == _fires(original, data[cut:]) and after


def test_page_hinkley_has_the_attributes_read():
    detector = PageHinkley()
    read = {"_x_mean", "_sum_increase", "_sum_decrease", "_min_increase", "_max_decrease", "_drift_detected"}
    assert set(vars(detector)) >= read
    assert set(vars(detector._x_mean)) == {"n", "_mean"}
