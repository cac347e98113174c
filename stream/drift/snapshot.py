"""One partition's drift state to its saved record (:mod:`stream.drift.state`) and back.

:func:`record_of` writes a live state down as plain numbers (sparse bin counts, detectors' numbers);
:func:`read_record` checks a saved body's JSON, version and fields; :func:`state_from` rebuilds the
live state, once the record is known to fit the monitor's window and detectors.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import orjson
from pydantic import ValidationError

from stream.drift.detectors import ADWIN
from stream.drift.estimation import Chunk, Estimator
from stream.drift.partition import DETECTOR_EVERY, PartitionState, Slice, page_hinkley
from stream.drift.river_state import (
    adwin_from_state,
    adwin_state,
    page_hinkley_from_state,
    page_hinkley_state,
)
from stream.drift.state import STATE_VERSION, PartitionRecord, Shape, Slices, version_of
from stream.errors import StateRejected

SUM_DECIMALS = 6
"""Decimals of the estimator's saved sums (a fifth off the saved state; estimates restored within 1e-6)."""


def shape_of(per_partition: int, seconds: float, bins: list[int], estimator: Estimator | None) -> Shape:
    """The shape of a monitor's state: its window, its columns' bins, its detectors and estimator."""
    adwin, ph = ADWIN(), page_hinkley()
    return Shape(
        window_events=per_partition,
        window_seconds=seconds,
        bins=bins,
        detector_every=DETECTOR_EVERY,
        adwin=[adwin.delta, adwin.clock, adwin.max_buckets, adwin.min_window_length, adwin.grace_period],
        page_hinkley=[ph.min_instances, ph.delta, ph.threshold, ph.alpha],
        estimate=[estimator.size, estimator.threshold] if estimator else [],
    )


def record_of(
    state: PartitionState, model: str, shape: Shape, estimator: Estimator | None = None
) -> PartitionRecord:
    """The saved record of a partition's live state, for ``model`` and a monitor of ``shape``."""
    slices = list(state.slices)
    nonzero = [np.flatnonzero(sl.counts) for sl in slices]
    sparse = [estimator.sparse(sl.estimate) for sl in slices] if estimator else []
    return PartitionRecord(
        version=STATE_VERSION,
        model=model,
        shape=shape,
        slices=Slices(
            events=[sl.events for sl in slices],
            first_time=[sl.first_time for sl in slices],
            last_time=[sl.last_time for sl in slices],
            first_offset=[sl.first_offset for sl in slices],
            last_offset=[sl.last_offset for sl in slices],
            bins=[nz.tolist() for nz in nonzero],
            counts=[sl.counts[nz].tolist() for sl, nz in zip(slices, nonzero, strict=True)],
            estimate_bins=[bins.tolist() for bins, _ in sparse],
            estimate_counts=[stats[:, 0].astype(np.int64).tolist() for _, stats in sparse],
            estimate_sums=[stats[:, 1].tolist() for _, stats in sparse],
            estimate_squares=[stats[:, 2].tolist() for _, stats in sparse],
        ),
        feature_sums=state.feature_sums.tolist(),
        feature_count=state.feature_count,
        seen=state.seen,
        since_report=state.since_report,
        score_detector=adwin_state(state.score_detector),
        feature_detectors=[page_hinkley_state(d) for d in state.feature_detectors],
    )


def read_record(body: bytes, what: str) -> PartitionRecord:
    """The record a saved body holds; :class:`StateRejected` (reason ``format`` or ``version``) when
    it is not JSON, is of another version or is malformed (``what``: the state, for the message)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise StateRejected("format", f"{what} is not JSON: {exc}") from None
    version = version_of(data)
    if version != STATE_VERSION:
        raise StateRejected("version", f"{what} has version {version!r}, not {STATE_VERSION}")
    try:
        return PartitionRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise StateRejected("format", f"{what} is malformed: {where}: {first['msg']}") from None


def state_from(
    record: PartitionRecord,
    shape: Shape,
    bin_offsets: np.ndarray,
    per_partition: int,
    estimator: Estimator | None = None,
) -> PartitionState:
    """The live state a validated record describes, for a monitor of ``shape`` whose columns start
    at ``bin_offsets`` and whose windows hold ``per_partition`` events; ValueError when it does not fit."""
    if record.shape != shape:
        raise ValueError(f"saved for window and detectors {record.shape}, not {shape}")
    n_features, size = len(bin_offsets) - 2, int(bin_offsets[-1])  # columns: the features, the score
    sl = record.slices
    if len(sl.events) > per_partition:
        raise ValueError(f"{len(sl.events)} slices, more than a window's {per_partition} events")
    if len(record.feature_sums) != n_features or len(record.feature_detectors) != n_features:
        raise ValueError(f"the feature sums or detectors are not one per feature ({n_features})")
    if record.feature_count >= DETECTOR_EVERY or record.since_report > record.seen:
        raise ValueError("the detector or report counters are out of range")
    slices = _slices(sl, bin_offsets)
    if estimator is not None:
        for s, chunk in zip(slices, _estimate(sl, estimator.size), strict=True):
            s.estimate = [chunk]
    events = sum(sl.events)
    if events > record.seen:
        raise ValueError(f"the window holds {events} events, more than the {record.seen} ever seen")
    return PartitionState(
        slices=slices,
        totals=sum((s.counts for s in slices), np.zeros(size, dtype=np.int64)),
        events=events,
        score_detector=adwin_from_state(record.score_detector),
        feature_detectors=[page_hinkley_from_state(d, page_hinkley()) for d in record.feature_detectors],
        feature_sums=np.array(record.feature_sums, dtype=np.float64),
        feature_count=record.feature_count,
        seen=record.seen,
        since_report=record.since_report,
    )


def _slices(sl: Slices, bin_offsets: np.ndarray) -> deque[Slice]:
    """The window's slices with their dense bin counts; ValueError when one does not fit the bins."""
    size = int(bin_offsets[-1])
    slices: deque[Slice] = deque()
    for i, events in enumerate(sl.events):
        if sl.bins[i] and sl.bins[i][-1] >= size:
            raise ValueError(f"slice {i} counts bin {sl.bins[i][-1]} of {size}")
        counts = np.zeros(size, dtype=np.int64)
        counts[sl.bins[i]] = sl.counts[i]
        if (np.add.reduceat(counts, bin_offsets[:-1]) != events).any():
            raise ValueError(f"slice {i} does not count each of its {events} events once per column")
        times, offsets = (sl.first_time[i], sl.last_time[i]), (sl.first_offset[i], sl.last_offset[i])
        slices.append(Slice(events, counts, *times, *offsets))
    return slices


def _estimate(sl: Slices, size: int) -> list[Chunk]:
    """Each slice's estimator chunk; ValueError when one does not fit the bins or its events."""
    if len(sl.estimate_bins) != len(sl.events):
        raise ValueError("the slices carry no performance estimate")
    chunks = []
    for i, events in enumerate(sl.events):
        bins = np.array(sl.estimate_bins[i], dtype=np.int64)
        stats = np.column_stack(
            [
                np.array(f[i], dtype=np.float64).reshape(-1)
                for f in (sl.estimate_counts, sl.estimate_sums, sl.estimate_squares)
            ]
        ).reshape(-1, 3)
        if len(bins) and bins[-1] >= size:
            raise ValueError(f"slice {i} estimates bin {bins[-1]} of {size}")
        if (
            stats[:, 0].sum() != events
            or (stats[:, 1] > stats[:, 0] * (1 + 1e-9)).any()  # each p at most 1: p^2 <= p
            or (stats[:, 2] > stats[:, 1] * (1 + 1e-9)).any()
        ):
            raise ValueError(f"slice {i}'s estimate does not count its {events} events with probabilities")
        chunks.append((bins, stats))
    return chunks
