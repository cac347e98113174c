"""The worker's periodic report line: counts and end-to-end latencies since the last one."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np

from stream.scoring.pipeline import BatchResult
from stream.settings import DEFAULT_MAX_CLOCK_SKEW_S


def split_skewed(latencies: Sequence[float], max_skew_s: float) -> tuple[np.ndarray, int]:
    """The end-to-end latencies of a batch that count, and how many events are clock-skewed.

    An event dated further than ``max_skew_s`` from the time its records are emitted, either way, is
    scored, but its latency says nothing of the worker (a producer's clock is off, or the date is
    made up): it is left out, and counted. One dated a little ahead counts as no delay, so that a
    latency sum never goes down.
    """
    array = np.asarray(latencies, dtype=float)
    within = np.abs(array) <= max_skew_s  # NaN too is out
    return np.maximum(array[within], 0.0), len(array) - int(np.count_nonzero(within))


class Stats:
    """Counts and end-to-end latencies since the last report line."""

    def __init__(self, max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S) -> None:
        self.started = time.monotonic()
        self.max_clock_skew_s = max_clock_skew_s
        self.scored = self.dead = self.total_scored = self.total_dead = self.total_skewed = 0
        self.latencies: list[float] = []

    def add(self, result: BatchResult) -> None:
        dead = sum(result.dead_letters.values())
        self.scored += result.scored
        self.dead += dead
        self.total_scored += result.scored
        self.total_dead += dead
        kept, skewed = split_skewed(result.latencies, self.max_clock_skew_s)
        self.total_skewed += skewed
        if len(self.latencies) < 100_000:
            self.latencies += kept.tolist()

    def line(self) -> tuple[str, dict[str, float]] | None:
        """The report since the last call: a sentence, and its figures as log fields."""
        now = time.monotonic()
        elapsed, self.started = now - self.started, now
        if not self.scored and not self.dead:
            return None
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1e3 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else float("nan")
        fields = {
            "scored_per_s": round(self.scored / elapsed, 1),
            "dead_lettered_per_s": round(self.dead / elapsed, 1),
            "scored_total": self.total_scored,
            "dead_lettered_total": self.total_dead,
            "clock_skewed_total": self.total_skewed,
            "latency_p50_ms": round(p50, 2),
            "latency_p99_ms": round(p99, 2),
        }
        skewed = f", {self.total_skewed} clock-skewed" if self.total_skewed else ""
        line = (
            f"scored {fields['scored_per_s']:.0f}/s, dead-lettered {fields['dead_lettered_per_s']:.0f}/s "
            f"(total {self.total_scored} scored, {self.total_dead} dead letters{skewed}); "
            f"event time to emit p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        self.scored = self.dead = 0
        self.latencies = []
        return line, fields
