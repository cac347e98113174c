"""The worker's report line: rates and latency percentiles since the last line."""

from __future__ import annotations

from stream.pipeline import BatchResult
from stream.stats import Stats


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
