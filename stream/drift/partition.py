"""The window and the change detectors of one input partition, as the drift monitor keeps them.

A window is a queue of slices, what each batch added (bin counts of every column, event times and
offsets, and the performance estimator's chunks), with their totals; the detectors are River's
ADWIN on the score and a Page-Hinkley per feature, fed with the mean of each run of
:data:`DETECTOR_EVERY` events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from stream.drift.detectors import ADWIN, PageHinkley
from stream.drift.estimation import Chunk

# Page-Hinkley on z-scores: ignore shifts under 0.5 sd of a slice mean; alarm at a cumulative 25
# (about one false alarm in 10^6 updates for a two-sided CUSUM; see tests/unit/drift/test_monitor.py).
PH_DELTA = 0.5
PH_THRESHOLD = 25.0
DETECTOR_EVERY = 32  # events of a partition per Page-Hinkley update
#: Most events in one slice. A window drops whole slices, so this bounds how far its size strays
#: from its events per partition; small batches (a lone event scored at once) share a slice, so the
#: window and its saved state do not grow with the number of batches.
SLICE_EVENTS = 64


@dataclass
class Slice:
    """What consecutive batches added to one partition's window (at most :data:`SLICE_EVENTS`)."""

    events: int
    counts: np.ndarray  # flat bin counts of every column
    first_time: float
    last_time: float
    first_offset: int
    last_offset: int
    estimate: list[Chunk] = field(default_factory=list)  # the score's bins and stats (a calibrated card)


@dataclass
class PartitionState:
    """The window and the detectors of one input partition."""

    slices: deque[Slice]
    totals: np.ndarray
    events: int
    score_detector: ADWIN
    feature_detectors: list[PageHinkley]
    feature_sums: np.ndarray  # of the events not yet given to the feature detectors
    feature_count: int = 0
    seen: int = 0  # events ever added
    since_report: int = 0  # events added since the last window report

    def add_slice(self, window: Slice, span_s: float) -> None:
        """Add a batch's slice to the window: into the last slice while that stays within
        :data:`SLICE_EVENTS` events and ``span_s`` seconds, else as a slice of its own."""
        last = self.slices[-1] if self.slices else None
        if (
            last is None
            or last.events + window.events > SLICE_EVENTS
            or window.last_time - last.first_time > span_s
        ):
            self.slices.append(window)
            return
        last.counts = last.counts + window.counts
        last.events += window.events
        last.first_time = min(last.first_time, window.first_time)
        last.last_time = max(last.last_time, window.last_time)
        last.last_offset = window.last_offset
        last.estimate += window.estimate


def page_hinkley() -> PageHinkley:
    """A feature's detector, on the z-scores of its run means."""
    return PageHinkley(min_instances=30, delta=PH_DELTA, threshold=PH_THRESHOLD)


def empty_state(bins: int, features: int) -> PartitionState:
    """A partition's state before its first event: ``bins`` flat bins, ``features`` detectors."""
    return PartitionState(
        slices=deque(),
        totals=np.zeros(bins, dtype=np.int64),
        events=0,
        score_detector=ADWIN(),
        feature_detectors=[page_hinkley() for _ in range(features)],
        feature_sums=np.zeros(features),
    )
