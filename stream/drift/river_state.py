"""River's change detectors as plain numbers and back, exactly: the one place that reads their insides.

River 0.26's ``ADWIN`` keeps its window in a Rust ``AdaptiveWindowing``, whose only state access is
``__getstate__``/``__setstate__`` with bincode bytes (serde's fixed-width little-endian layout of
the Rust struct). :func:`adwin_state` decodes those bytes into numbers (the window's buckets of
totals and variances, its counters); :func:`adwin_from_state` encodes validated numbers back into
the same layout, so the Rust side only ever reads bytes made here, never bytes from Kafka.
``PageHinkley`` is pure Python: its running mean and cumulative sums are read and set directly.

Both depend on River's private layout; ``tests/unit/drift/test_river_state.py`` fails when it changes.
"""

from __future__ import annotations

import struct
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stream.drift.detectors import ADWIN, PageHinkley

_I32 = Annotated[int, Field(ge=-(2**31), lt=2**31)]
_MAX_LEVELS = 64  # bucket level i holds summaries of 2**i values


class PlainData(BaseModel):
    """Plain numbers, validated: unknown fields refused, non-finite floats kept as strings in JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")


class AdwinBucket(PlainData):
    """One level of ADWIN's exponential histogram: ``used`` summaries of 2**level values each."""

    used: int = Field(ge=0)
    totals: list[float]
    variances: list[float]


class AdwinState(PlainData):
    drift_detected: bool
    total: float
    variance: float
    width: float = Field(ge=0)
    total_width: float
    n_buckets: _I32
    max_n_buckets: _I32
    tick: _I32
    n_detections: _I32
    buckets: list[AdwinBucket] = Field(min_length=1, max_length=_MAX_LEVELS)

    @model_validator(mode="after")
    def _consistent(self) -> AdwinState:
        if self.width != sum(b.used * 2.0**level for level, b in enumerate(self.buckets)):
            raise ValueError("ADWIN's width is not the number of values its buckets summarise")
        return self


class PageHinkleyState(PlainData):
    drift_detected: bool
    n: float = Field(ge=0)
    mean: float
    sum_increase: float
    sum_decrease: float
    min_increase: float
    max_decrease: float


# -- ADWIN -----------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[float | int, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def floats(self) -> list[float]:
        (n,) = self.take("Q")
        return [float(v) for v in self.take(f"{n}d")]


def _params(adwin: ADWIN) -> tuple[float, int, int, int, int]:
    return (adwin.delta, adwin.clock, adwin.max_buckets, adwin.min_window_length, adwin.grace_period)


def adwin_state(adwin: ADWIN) -> AdwinState:
    """The numbers of ``adwin``'s window and counters."""
    r = _Reader(adwin._helper.__getstate__())
    delta, clock, max_buckets, min_length, grace = r.take("diQdd")
    total, variance, width, total_width = r.take("dddd")
    n_buckets, max_n_buckets, tick, n_detections = (int(v) for v in r.take("iiii"))
    (levels,) = r.take("Q")
    buckets = []
    for _ in range(int(levels)):
        _max_size, used = r.take("QQ")
        buckets.append(AdwinBucket(used=int(used), totals=r.floats(), variances=r.floats()))
    outer = r.take("diQii")
    inner = (delta, clock, max_buckets, int(min_length), int(grace))
    if r.at != len(r.data) or outer != _params(adwin) or inner != _params(adwin):
        raise RuntimeError("river's AdaptiveWindowing changed its layout: update stream/drift/river_state.py")
    return AdwinState(
        drift_detected=adwin.drift_detected,
        total=total,
        variance=variance,
        width=width,
        total_width=total_width,
        n_buckets=n_buckets,
        max_n_buckets=max_n_buckets,
        tick=tick,
        n_detections=n_detections,
        buckets=buckets,
    )


def adwin_from_state(state: AdwinState, adwin: ADWIN | None = None) -> ADWIN:
    """An ADWIN (``adwin``'s parameters, else the defaults) in exactly the state ``state`` describes.

    Raises ValueError when the buckets do not fit the detector's ``max_buckets``.
    """
    adwin = adwin or ADWIN()
    delta, clock, max_buckets, min_length, grace = _params(adwin)
    slots = max_buckets + 1
    for b in state.buckets:
        if len(b.totals) != slots or len(b.variances) != slots or b.used > max_buckets:
            raise ValueError(f"an ADWIN bucket holds {slots} slots of which at most {max_buckets} in use")
    parts = [
        struct.pack("<diQdd", delta, clock, max_buckets, float(min_length), float(grace)),
        struct.pack("<dddd", state.total, state.variance, state.width, state.total_width),
        struct.pack("<iiii", state.n_buckets, state.max_n_buckets, state.tick, state.n_detections),
        struct.pack("<Q", len(state.buckets)),
    ]
    for b in state.buckets:
        parts.append(struct.pack(f"<QQQ{slots}d", max_buckets, b.used, slots, *b.totals))
        parts.append(struct.pack(f"<Q{slots}d", slots, *b.variances))
    parts.append(struct.pack("<diQii", delta, clock, max_buckets, min_length, grace))
    adwin._helper.__setstate__(b"".join(parts))
    adwin._drift_detected = state.drift_detected
    return adwin


# -- Page-Hinkley ----------------------------------------------------------------------------------


def page_hinkley_state(detector: PageHinkley) -> PageHinkleyState:
    """The running mean and cumulative sums of ``detector``."""
    return PageHinkleyState(
        drift_detected=detector.drift_detected,
        n=detector._x_mean.n,
        mean=detector._x_mean._mean,
        sum_increase=detector._sum_increase,
        sum_decrease=detector._sum_decrease,
        min_increase=detector._min_increase,
        max_decrease=detector._max_decrease,
    )


def page_hinkley_from_state(state: PageHinkleyState, detector: PageHinkley) -> PageHinkley:
    """``detector`` (fresh, with its parameters) set to exactly ``state``."""
    detector._x_mean.n = state.n
    detector._x_mean._mean = state.mean
    detector._sum_increase = state.sum_increase
    detector._sum_decrease = state.sum_decrease
    detector._min_increase = state.min_increase
    detector._max_decrease = state.max_decrease
    detector._drift_detected = state.drift_detected
    return detector
