"""Latency on equal terms: the rates each rung is offered, and the times to append and to read."""

from __future__ import annotations

import pytest

from bench import latency
from bench.latency import Timed


def test_a_rung_is_offered_its_own_fractions_and_each_rate_it_can_sustain():
    points = latency.offers(10_000, rates=(1_000, 3_000, 5_000, 20_000), fractions=(0.25, 0.5))
    assert points == [
        ({"fraction_of_max": 0.25}, 2_500),
        ({"fraction_of_max": 0.5}, 5_000),
        ({"rate": 1_000}, 1_000),
        ({"rate": 3_000}, 3_000),
        ({"rate": 5_000}, 5_000),
        ({"rate": 20_000, "skipped": "above 80% of the rung's maximum (10,000 events/s)"}, None),
    ]


def test_a_rate_of_exactly_80_percent_of_the_maximum_is_offered_and_one_above_is_not():
    assert latency.offers(1_250, rates=(1_000,), fractions=()) == [({"rate": 1_000}, 1_000)]
    [(point, rate)] = latency.offers(1_249, rates=(1_000,), fractions=())
    assert rate is None and point["skipped"] == "above 80% of the rung's maximum (1,249 events/s)"


def test_the_quick_plan_offers_one_rate_and_half_the_maximum():
    from bench.ladder import FULL, QUICK

    assert (QUICK.rates, QUICK.fractions) == ((1_000,), (0.5,))
    assert FULL.rates == latency.RATES == (1_000, 3_000, 5_000, 20_000)


def test_append_and_read_percentiles_come_in_pairs():
    # occurred at 100 s; appended 1..100 ms later, read 5 ms after each append
    timed = [Timed(occurred=100.0, appended=100.0 + i / 1000, read=100.005 + i / 1000) for i in range(1, 101)]
    figures = latency.pairs(timed)
    assert figures["append_p50_ms"] == pytest.approx(50.0)
    assert figures["read_p50_ms"] == pytest.approx(55.0)
    assert figures["append_p99_ms"] == pytest.approx(99.0)
    assert figures["read_p99_ms"] == pytest.approx(104.0)
    assert figures["read_max_ms"] == pytest.approx(105.0)
    assert set(figures) == {f"{k}_{q}_ms" for k in ("append", "read") for q in ("p50", "p95", "p99", "max")}
    assert latency.pairs([]) == {}


def test_the_first_second_of_a_load_warms_up_and_is_left_out():
    offered = {"offered": 1_000, "achieved": 990, "sent": 3, "started_at": 50.0}
    timed = [
        Timed(occurred=50.5, appended=50.9, read=51.0),  # in the warm-up: 500 ms
        Timed(occurred=51.5, appended=51.51, read=51.52),
        Timed(occurred=52.0, appended=52.01, read=52.02),
    ]
    figures = latency.summarise(offered, timed, rate=1_000, seconds=8.0)
    assert (figures["sent"], figures["read"], figures["events"]) == (3, 3, 2)
    assert figures["read_max_ms"] == pytest.approx(20.0)
    assert figures["generator_kept_up"] is True
    assert "started_at" not in figures
    assert latency.window(offered, 8.0) == (51.0, 58.0)
    assert latency.window(offered, 2.0) == (50.5, 52.0)  # a short load warms up for a quarter of it
    behind = latency.summarise({**offered, "achieved": 900}, timed, rate=1_000, seconds=8.0)
    assert behind["generator_kept_up"] is False
