"""The worker's report line: rates and latency percentiles since the last line."""

from __future__ import annotations

from stream.scoring.pipeline import BatchResult
from stream.worker.stats import Stats


def test_line_reports_rates_totals_and_percentiles_then_starts_afresh():
    stats = Stats()
    stats.started -= 2.0  # two seconds ago
    stats.add(
        BatchResult(scored=90, dead_letters={"decode": 10}, latencies=[i / 1000 for i in range(1, 101)])
    )
    line, fields = stats.line()
    assert 40 <= fields["scored_per_s"] <= 45 and 4 <= fields["dead_lettered_per_s"] <= 5
    assert fields["scored_total"] == 90 and fields["dead_lettered_total"] == 10
    assert fields["latency_p50_ms"] == 50.5 and fields["latency_p99_ms"] == 100.0
    assert "total 90 scored, 10 dead letters" in line
    assert stats.line() is None, "nothing new since the last line"
    stats.add(BatchResult(scored=1, latencies=[0.002]))
    assert stats.line()[1]["scored_total"] == 91


def test_events_far_from_the_clock_stay_out_of_the_percentiles_and_are_counted():
    stats = Stats(max_clock_skew_s=60.0)
    stats.started -= 1.0
    stats.add(BatchResult(scored=5, latencies=[0.010, -375318002662.5, 0.020, 8e10, -1.0]))
    line, fields = stats.line()
    assert fields["latency_p99_ms"] == 20.0 and fields["latency_p50_ms"] == 10.0
    assert fields["clock_skewed_total"] == 2 and "2 clock-skewed" in line
    stats.add(BatchResult(scored=1, latencies=[8e10]))
    line, fields = stats.line()
    assert fields["clock_skewed_total"] == 3 and fields["latency_p99_ms"] != fields["latency_p99_ms"], "NaN"
