"""The ladder's arithmetic: steady rates, CPU in a window, backlog and probe sizes, percentiles."""

from __future__ import annotations

import pytest

from bench import measure


def test_the_rate_is_taken_over_the_middle_of_the_drain():
    # 100 outputs of warm-up over 2 s, then 1,000 a second for 8 s, then a ragged end of 100 over 2 s
    times = [1_000 + 20 * i for i in range(100)]
    times += [3_000 + i for i in range(8_000)]
    times += [11_000 + 20 * i for i in range(100)]
    middle = measure.steady(times)
    assert middle.events == int(0.8 * len(times)) == 6_560
    assert middle.rate == pytest.approx(1_000, rel=0.01)
    assert 3.0 <= middle.start < middle.end <= 11.0


def test_the_order_of_the_outputs_does_not_matter():
    times = [5_000 + i for i in range(1_001)]
    assert measure.steady(list(reversed(times))) == measure.steady(times)


def test_a_drain_of_one_output_has_no_rate():
    with pytest.raises(ValueError, match="two outputs"):
        measure.steady([1_000])


def test_cpu_in_a_window_is_interpolated_between_samples():
    samples = [(10.0, 1.0), (11.0, 1.5), (12.0, 2.5)]
    assert measure.cpu_between(samples, 10.0, 12.0) == pytest.approx(1.5)
    assert measure.cpu_between(samples, 10.5, 11.5) == pytest.approx(2.0 - 1.25)  # halfway in each interval
    with pytest.raises(ValueError, match="no CPU samples"):
        measure.cpu_between(samples, 9.0, 11.0)


def test_a_backlog_lasts_the_wanted_seconds_in_its_middle_with_a_margin():
    size = measure.backlog_size(20_000, 10, smallest=1_000, largest=10**7)
    assert size * (1 - 2 * measure.EDGE) / 20_000 == pytest.approx(12.5)  # 10 s and a quarter more


def test_a_backlog_is_bounded():
    assert measure.backlog_size(10**6, 10, smallest=1_000, largest=500_000) == 500_000
    assert measure.backlog_size(10, 1, smallest=1_000, largest=500_000) == 1_000


def next_backlog(size, rate, drained_s, measured_s):
    return measure.next_backlog(size, rate, drained_s, measured_s, wanted_s=10, probe_s=1, largest=10**6)


def test_backlogs_too_short_to_tell_the_rate_grow_towards_the_probe_length():
    assert next_backlog(2_000, 50_000, drained_s=0.05, measured_s=0.04) == 60_000  # x30 at most
    assert next_backlog(2_000, 50_000, drained_s=0.6, measured_s=0.5) == 5_000
    assert next_backlog(2_000, 50_000, drained_s=0.9, measured_s=0.7) == 4_000  # x2 at least


def test_a_backlog_long_enough_to_tell_the_rate_is_sized_from_it():
    assert next_backlog(20_000, 20_000, drained_s=1.0, measured_s=0.8) == 312_500
    # an underestimated rate still makes progress
    assert next_backlog(20_000, 1_000, drained_s=3.0, measured_s=2.4) == 30_000


def test_the_drain_whose_middle_lasts_long_enough_is_the_measurement():
    assert next_backlog(300_000, 20_000, drained_s=15.0, measured_s=12.0) is None
    assert next_backlog(900_000, 10**6, drained_s=0.1, measured_s=0.08) == 10**6  # bounded
    assert next_backlog(10**6, 10**6, drained_s=0.1, measured_s=0.08) is None


def test_percentiles_by_nearest_rank_in_milliseconds():
    lat = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert measure.percentiles_ms(lat) == {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert measure.percentiles_ms([]) == {}
