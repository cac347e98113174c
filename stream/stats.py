"""The worker's periodic report line: counts and end-to-end latencies since the last one."""

from __future__ import annotations

import statistics
import time

from stream.pipeline import BatchResult


class Stats:
    """Counts and end-to-end latencies since the last report line."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.scored = self.dead = self.total_scored = self.total_dead = 0
        self.latencies: list[float] = []

    def add(self, result: BatchResult) -> None:
        dead = sum(result.dead_letters.values())
        self.scored += result.scored
        self.dead += dead
        self.total_scored += result.scored
        self.total_dead += dead
        if len(self.latencies) < 100_000:
            self.latencies += result.latencies

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
            "latency_p50_ms": round(p50, 2),
            "latency_p99_ms": round(p99, 2),
        }
        line = (
            f"scored {fields['scored_per_s']:.0f}/s, dead-lettered {fields['dead_lettered_per_s']:.0f}/s "
            f"(total {self.total_scored} scored, {self.total_dead} dead letters); "
            f"event time to emit p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        self.scored = self.dead = 0
        self.latencies = []
        return line, fields
