"""The saved form of one partition's drift state: versioned JSON, plain numbers, validated on reading.

A record holds the model it was computed for, the shape of the window (events per partition,
seconds, the bins of every column, the detectors' parameters), the window's slices (sparse bin
counts; with a calibrated card, the performance estimator's sparse per-bin count, sum and sum of
squares of the calibrated score), and each detector's state as numbers
(:mod:`stream.drift.river_state`). Reading it back checks every field's type and bounds (unknown
fields are refused) before anything is built from it;
:meth:`stream.drift.monitor.DriftMonitor.restore` then checks it against the monitor's own shape.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from stream.drift.river_state import AdwinState, PageHinkleyState, PlainData

#: Version 1 was a pickle under another key: its signature does not verify, and it is never read;
#: version 2 had no performance estimator.
STATE_VERSION = 3
_Count = Annotated[int, Field(ge=0, lt=2**62)]
_Sum = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class Slices(PlainData):
    """The window's slices, one entry per slice in every list: what one batch added to the partition."""

    events: list[Annotated[int, Field(ge=1, lt=2**62)]]
    first_time: list[float]
    last_time: list[float]
    first_offset: list[_Count]
    last_offset: list[_Count]
    bins: list[list[_Count]]  # the non-zero bins of the flat bin counts, ascending
    counts: list[list[Annotated[int, Field(ge=1, lt=2**62)]]]  # their counts
    # the estimator's non-empty score bins, ascending, and their events, sums of p and of p^2
    # (empty lists when the card has no calibration)
    estimate_bins: list[list[_Count]] = Field(default_factory=list)
    estimate_counts: list[list[Annotated[int, Field(ge=1, lt=2**62)]]] = Field(default_factory=list)
    estimate_sums: list[list[_Sum]] = Field(default_factory=list)
    estimate_squares: list[list[_Sum]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _aligned(self) -> Slices:
        n = len(self.events)
        fields = (self.first_time, self.last_time, self.first_offset, self.last_offset)
        if any(len(f) != n for f in (*fields, self.bins, self.counts)):
            raise ValueError("the slices' lists differ in length")
        for bins, counts in zip(self.bins, self.counts, strict=True):
            if len(bins) != len(counts) or any(a >= b for a, b in itertools.pairwise(bins)):
                raise ValueError("a slice's bins are not ascending or do not match its counts")
        estimate = (self.estimate_bins, self.estimate_counts, self.estimate_sums, self.estimate_squares)
        if any(len(f) not in (0, n) or len(f) != len(self.estimate_bins) for f in estimate):
            raise ValueError("the slices' estimate lists differ in length")
        for bins, *stats in zip(*estimate, strict=True):
            if any(len(f) != len(bins) for f in stats) or any(a >= b for a, b in itertools.pairwise(bins)):
                raise ValueError("a slice's estimate bins are not ascending or do not match their stats")
        return self


class Shape(PlainData):
    """What a saved state must match to be adopted, besides the model."""

    window_events: int
    window_seconds: float
    bins: list[int]  # bins of every feature, then of the score
    detector_every: int
    adwin: list[float]
    page_hinkley: list[float]
    estimate: list[float]  # the estimator's bins and threshold (empty: no calibration)


class PartitionRecord(PlainData):
    """One partition's drift state as saved."""

    version: Literal[3]
    model: str  # sha256:version of the model whose reference the windows are compared with
    shape: Shape
    slices: Slices
    feature_sums: list[float]
    feature_count: _Count
    seen: _Count
    since_report: _Count
    score_detector: AdwinState
    feature_detectors: list[PageHinkleyState]


def version_of(data: Any) -> object:
    """The ``version`` field of a decoded record, or None when it has none."""
    return data.get("version") if isinstance(data, dict) else None
