"""The arithmetic of the ladder, pure: backlog sizes, steady rates, CPU in a window, percentiles.

A drain is measured on the broker's clock: output topics are created with ``LogAppendTime``, so
every output record carries the time the broker appended it, whatever client wrote it. The rate is
taken over the middle of the drain (by default between the 10% and the 90% output), which leaves
out the warm-up (first fetches, caches, a rebalance settling) and the ragged end where some
partitions are done before others.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Share of a drain's outputs left out at each end when its rate is measured.
EDGE = 0.1


@dataclass(frozen=True)
class Steady:
    """The middle of a drain: ``events`` outputs appended between ``start`` and ``end`` (epoch s)."""

    events: int
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.inf


def steady(append_times_ms: Sequence[int], edge: float = EDGE) -> Steady:
    """The middle of a drain from its outputs' append times (ms): from the ``edge`` to the ``1 - edge`` one.

    >>> s = steady([1000 + i for i in range(1001)])  # one output a millisecond
    >>> (s.events, s.seconds, round(s.rate))
    (800, 0.8, 1000)
    """
    times = sorted(append_times_ms)
    if len(times) < 2:
        raise ValueError("a drain needs at least two outputs to have a rate")
    first, last = int(len(times) * edge), math.ceil((len(times) - 1) * (1 - edge))
    return Steady(events=last - first, start=times[first] / 1000, end=times[last] / 1000)


def cpu_between(samples: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds spent between ``start`` and ``end``, from ``(time, cumulative CPU s)`` samples.

    Interpolated linearly between the samples around each end; the samples must span the window.
    """
    return _at(samples, end) - _at(samples, start)


def _at(samples: Sequence[tuple[float, float]], t: float) -> float:
    times = [s[0] for s in samples]
    if not samples or t < times[0] or t > times[-1]:
        raise ValueError(f"no CPU samples around {t:.3f}")
    i = bisect.bisect_left(times, t)
    if times[i] == t:
        return samples[i][1]
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0)


def backlog_size(rate: float, seconds: float, smallest: int, largest: int, edge: float = EDGE) -> int:
    """Events for a drain whose measured middle lasts ``seconds`` at ``rate``, within bounds.

    The middle is ``1 - 2 * edge`` of the drain, and a quarter more is added for a rate that the
    probe underestimated.

    >>> backlog_size(10_000, 10, 1_000, 10**6)
    156250
    """
    wanted = rate * seconds / (1 - 2 * edge) * 1.25
    return int(min(largest, max(smallest, wanted)))


def next_backlog(
    size: int,
    rate: float,
    drained_s: float,
    measured_s: float,
    *,
    wanted_s: float,
    probe_s: float,
    largest: int,
) -> int | None:
    """The next backlog after one of ``size`` events drained; None when that drain is the measurement.

    A drain is the measurement when its middle lasted ``wanted_s`` (or the backlog is the largest
    allowed). A drain shorter than ``probe_s`` says little of the rate (warm-up weighs on it), so
    the backlog grows 2-30 times towards ``probe_s``; a longer one sizes the next backlog from its
    rate (:func:`backlog_size`), at least 1.5 times this one, so that the rounds always end.

    >>> next_backlog(2_000, 20_000, 0.1, 0.08, wanted_s=10, probe_s=1, largest=10**6)
    30000
    >>> next_backlog(20_000, 20_000, 1.0, 0.8, wanted_s=10, probe_s=1, largest=10**6)
    312500
    >>> next_backlog(300_000, 20_000, 15.0, 12.0, wanted_s=10, probe_s=1, largest=10**6) is None
    True
    """
    if measured_s >= wanted_s or size >= largest:
        return None
    if drained_s < probe_s:
        wanted = size * min(30.0, max(2.0, 1.5 * probe_s / max(drained_s, 0.01)))
    else:
        wanted = max(1.5 * size, backlog_size(rate, wanted_s, 0, largest))
    return int(min(largest, wanted))


def percentiles_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of latencies in seconds, in milliseconds (nearest rank)."""
    lat = sorted(latencies_s)
    n = len(lat)
    if not n:
        return {}

    def rank(q: float) -> float:
        return round(lat[min(n - 1, math.ceil(q * n) - 1)] * 1e3, 2)

    return {
        "p50_ms": rank(0.50),
        "p95_ms": rank(0.95),
        "p99_ms": rank(0.99),
        "max_ms": round(lat[-1] * 1e3, 2),
    }
