"""Judging a ladder run: the limit must be the fastest rung; the ratios of the target table."""

from __future__ import annotations

from bench import summary


def rung(key, rate, **more):
    return {"rung": key, "key": key, "events_per_s": rate, "events": 100, "outputs": 100, **more}


LADDER = [
    rung("passthrough", 100_000),
    rung("bare", 30_000),
    rung("naive", 1_500),
    rung("quix", 8_000),
    rung(
        "streamscore",
        6_000,
        cpu_s_per_1000=0.2,
        latency=[
            {"fraction_of_max": 0.5, "append_p99_ms": 40.0},
            {"fraction_of_max": 0.7, "append_p99_ms": 90.0},
            {"rate": 1_000, "append_p99_ms": 5.0},  # an absolute rate: not in the target table
        ],
    ),
    rung("streamscore-2", 10_800),
    rung("streamscore-eos", 4_500),
    rung("streamscore-avro", 4_200, cpu_s_per_1000=0.3),
    rung("streamscore-json-schema", 5_700, cpu_s_per_1000=0.22),
    rung("streamscore-protobuf", 4_800, cpu_s_per_1000=0.25),
]


def test_a_ladder_whose_limit_is_the_fastest_rung_is_valid():
    assert summary.problems(LADDER) == []


def test_a_rung_faster_than_the_limit_makes_the_run_invalid():
    ladder = [rung("passthrough", 316), *LADDER[1:]]
    found = summary.problems(ladder)
    assert len(found) == 9
    assert found[0].startswith("bare measured 30,000 events/s, faster than the limit (316/s)")


def test_the_limit_may_be_beaten_within_the_tolerance():
    ladder = [rung("passthrough", 50_000), rung("bare", 54_000)]
    assert summary.problems(ladder) == []
    assert summary.problems([rung("passthrough", 50_000), rung("bare", 56_000)]) != []


def test_a_failed_limit_lost_events_or_wrong_scores_make_the_run_invalid():
    assert summary.problems([{"rung": "p", "key": "passthrough", "error": "exited"}]) == [
        "the limit rung failed: exited"
    ]
    assert summary.problems([rung("bare", 10, outputs=90)]) == ["bare wrote 90 predictions for 100 events"]
    assert "differ from the model's" in summary.problems([rung("quix", 10, scores_match=False)])[0]


def test_a_run_without_the_limit_has_no_share_of_it():
    ladder = [dict(r) for r in LADDER[1:]]
    assert summary.problems(ladder) == []
    summary.to_limit(ladder)
    assert all("ratio_to_limit" not in r for r in ladder)


def test_the_ratios_of_the_target_table():
    assert summary.ratios(LADDER) == {
        "streamscore_1_process_to_bare_loop": 0.2,
        "streamscore_to_naive_faust": 4.0,
        "streamscore_to_quix_per_process": 0.75,
        "exactly_once_to_bare_loop": 0.15,
        "streamscore_cpu_s_per_1000": 0.2,
        "streamscore_p99_ms_at_50pct": 40.0,
        "streamscore_p99_ms_at_70pct": 90.0,
        "two_processes_to_one": 1.8,
        "shadow_challenger_to_none": None,  # no shadow rung in this ladder
        "reasons_to_none": None,  # no rung with reason codes in this ladder
        "avro_vs_json": 0.7,
        "avro_cpu_s_per_1000": 0.3,
        "json_schema_vs_json": 0.95,
        "json_schema_cpu_s_per_1000": 0.22,
        "protobuf_vs_json": 0.8,
        "protobuf_cpu_s_per_1000": 0.25,
        "columns_model_vs_tensor": None,  # no rung of a model with one input per column
        "columns_model_cpu_s_per_1000": None,
        **dict.fromkeys(READ_TARGETS),  # no consumer's read times in this ladder
    }
    ladder = [dict(r) for r in LADDER]
    summary.to_limit(ladder)
    shares = [1.0, 0.3, 0.015, 0.08, 0.06, 0.108, 0.045, 0.042, 0.057, 0.048]
    assert [r["ratio_to_limit"] for r in ladder] == shares


def test_a_failed_format_rung_gives_no_ratio_of_its_own():
    ladder = [*LADDER[:-3], {"rung": "avro", "key": "streamscore-avro", "error": "no schema registry"}]
    assert summary.problems(ladder) == []
    ratios = summary.ratios(ladder)
    assert ratios["avro_vs_json"] is None and ratios["json_schema_vs_json"] is None
    assert ratios["protobuf_vs_json"] is None and ratios["avro_cpu_s_per_1000"] is None
    assert ratios["two_processes_to_one"] == 1.8


def test_the_model_with_one_input_per_column_is_compared_with_the_one_tensor_model_of_its_run():
    ladder = [*LADDER, rung("streamscore-columns", 4_500, cpu_s_per_1000=0.26)]
    ratios = summary.ratios(ladder)
    assert ratios["columns_model_vs_tensor"] == 0.75
    assert ratios["columns_model_cpu_s_per_1000"] == 0.26
    assert ratios["avro_vs_json"] == 0.7, "the other ratios are as without it"


def test_reason_codes_are_compared_with_the_one_process_rung_of_their_run():
    ratios = summary.ratios([*LADDER, rung("streamscore-reasons", 4_800, cpu_s_per_1000=0.25)])
    assert ratios["reasons_to_none"] == 0.8 and ratios["two_processes_to_one"] == 1.8


def test_missing_rungs_give_no_ratio():
    ratios = summary.ratios([rung("bare", 30_000)])
    assert set(ratios.values()) == {None}


def test_a_run_in_rounds_gives_each_rounds_ratios_and_their_medians():
    rounds = [(6_000, 4_200), (9_000, 8_100), (5_000, 4_500)]  # the machine's speed changes between rounds
    ladder = [
        rung(key, rate, round=n)
        for n, (json, avro) in enumerate(rounds, 1)
        for key, rate in (("streamscore", json), ("streamscore-avro", avro))
    ]
    each = summary.by_round(ladder)
    assert [r["avro_vs_json"] for r in each] == [0.7, 0.9, 0.9]
    assert summary.ratios(ladder)["avro_vs_json"] == 0.9
    assert summary.ratios(ladder)["json_schema_vs_json"] is None
    assert summary.ratios(LADDER) == summary.by_round(LADDER)[0]


def test_the_latency_floor_is_not_the_limit_and_may_be_faster():
    ladder = [rung("floor", 130_000), *LADDER]
    assert summary.problems(ladder) == []
    assert summary.ratios(ladder) == summary.ratios(LADDER)
    assert summary.problems([rung("floor", 130_000, outputs=90)]) == [
        "floor wrote 90 predictions for 100 events"
    ]


def point(rate, p50, p99, cores=1.0):
    return {"rate": rate, "read_p50_ms": p50, "read_p99_ms": p99, "machine_cores_busy": cores}


SKIPPED = "above 80% of the rung's maximum (9,000 events/s)"
NAIVE = "above 80% of the rung's maximum (1,500 events/s)"
LATENCIES = [
    rung("floor", 120_000, latency=[{"fraction_of_max": 0.5, "read_p99_ms": 1}, point(1_000, 2.0, 5.0, 0.4)]),
    rung("naive", 1_500, latency=[{"rate": 1_000, "skipped": NAIVE}]),
    rung("streamscore-avro", 4_200, latency=[point(1_000, 14.0, 45.0, 1.2)]),
    rung("streamscore", 9_000, latency=[point(1_000, 12.5, 40.0, 1.1), {"rate": 20_000, "skipped": SKIPPED}]),
    {"rung": "quix", "key": "quix", "error": "no .venv-quix"},
]


def test_the_latency_table_sets_each_rung_against_the_floor_at_the_same_rate():
    rows = summary.latency_table(LATENCIES)
    assert rows == [
        {
            "rate": 1_000, "rung": "floor", "read_p50_ms": 2.0, "read_p99_ms": 5.0, "floor_p50_ms": 2.0,
            "floor_p99_ms": 5.0, "p50_above_floor_ms": 0.0, "p99_to_floor": 1.0, "machine_cores_busy": 0.4,
        },
        {"rate": 1_000, "rung": "naive", "skipped": NAIVE},
        {
            "rate": 1_000, "rung": "streamscore-avro", "read_p50_ms": 14.0, "read_p99_ms": 45.0,
            "floor_p50_ms": 2.0, "floor_p99_ms": 5.0, "p50_above_floor_ms": 12.0, "p99_to_floor": 9.0,
            "machine_cores_busy": 1.2,
        },
        {
            "rate": 1_000, "rung": "streamscore", "read_p50_ms": 12.5, "read_p99_ms": 40.0,
            "floor_p50_ms": 2.0, "floor_p99_ms": 5.0, "p50_above_floor_ms": 10.5, "p99_to_floor": 8.0,
            "machine_cores_busy": 1.1,
        },
        {"rate": 20_000, "rung": "streamscore", "skipped": SKIPPED},
    ]  # fmt: skip


def test_without_a_floor_at_a_rate_there_is_nothing_to_set_against():
    rows = summary.latency_table(LATENCIES[3:4])
    assert rows[0]["floor_p50_ms"] is None and rows[0]["p50_above_floor_ms"] is None
    assert rows[0]["p99_to_floor"] is None and rows[0]["read_p99_ms"] == 40.0


def test_a_run_in_rounds_sets_each_rung_against_the_floor_of_its_round():
    ladder = [
        rung("floor", 1, round=1, latency=[point(1_000, 2.0, 4.0)]),
        rung("streamscore", 1, round=1, latency=[point(1_000, 10.0, 40.0)]),
        rung("floor", 1, round=2, latency=[point(1_000, 4.0, 8.0)]),
        rung("streamscore", 1, round=2, latency=[point(1_000, 10.0, 40.0)]),
    ]
    rows = [r for r in summary.latency_table(ladder) if r["rung"] == "streamscore"]
    found = [(r["round"], r["p50_above_floor_ms"], r["p99_to_floor"]) for r in rows]
    assert found == [(1, 8.0, 10.0), (2, 6.0, 5.0)]


READ_TARGETS = (
    "streamscore_read_p50_ms_at_1000",
    "streamscore_read_p99_ms_at_1000",
    "avro_read_p50_ms_at_1000",
    "avro_read_p99_ms_at_1000",
    "json_schema_read_p50_ms_at_1000",
    "json_schema_read_p99_ms_at_1000",
    "protobuf_read_p50_ms_at_1000",
    "protobuf_read_p99_ms_at_1000",
    "floor_read_p50_ms_at_1000",
    "floor_read_p99_ms_at_1000",
    "streamscore_p50_above_floor_ms_at_1000",
    "streamscore_p99_to_floor_at_1000",
    "streamscore_read_p99_ms_at_3000",
    "quix_read_p99_ms_at_3000",
    "exactly_once_read_p99_ms_at_1000",
)


def test_the_latency_targets_are_read_at_equal_rates_against_the_floor():
    ladder = [
        *LATENCIES[:-1],
        rung("quix", 12_000, latency=[point(3_000, 7.0, 14.0)]),
        rung("streamscore-eos", 5_000, latency=[point(1_000, 60.0, 110.0)]),
        rung("streamscore-protobuf", 4_800, latency=[point(1_000, 13.0, 41.0)]),
    ]
    ladder[3] = rung("streamscore", 9_000, latency=[point(1_000, 12.5, 40.0), point(3_000, 9.0, 13.0)])
    found = {k: v for k, v in summary.ratios(ladder).items() if k in READ_TARGETS}
    assert found == {
        "streamscore_read_p50_ms_at_1000": 12.5,
        "streamscore_read_p99_ms_at_1000": 40.0,
        "avro_read_p50_ms_at_1000": 14.0,
        "avro_read_p99_ms_at_1000": 45.0,
        "json_schema_read_p50_ms_at_1000": None,  # no JSON Schema rung in this ladder
        "json_schema_read_p99_ms_at_1000": None,
        "protobuf_read_p50_ms_at_1000": 13.0,
        "protobuf_read_p99_ms_at_1000": 41.0,
        "floor_read_p50_ms_at_1000": 2.0,
        "floor_read_p99_ms_at_1000": 5.0,
        "streamscore_p50_above_floor_ms_at_1000": 10.5,
        "streamscore_p99_to_floor_at_1000": 8.0,
        "streamscore_read_p99_ms_at_3000": 13.0,
        "quix_read_p99_ms_at_3000": 14.0,
        "exactly_once_read_p99_ms_at_1000": 110.0,
    }


def test_the_latency_table_prints_one_line_a_row():
    text = summary.latency_text(summary.latency_table(LATENCIES))
    lines = text.splitlines()
    assert len(lines) == 2 + 5
    assert "streamscore-avro" in lines[4] and "14.0" in lines[4] and "+12.0" in lines[4]
    assert "9.0x" in lines[4]
    assert "streamscore" in lines[5] and "12.5" in lines[5] and "+10.5" in lines[5] and "8.0x" in lines[5]
    assert SKIPPED in lines[6]
    assert summary.latency_text([]) == ""
