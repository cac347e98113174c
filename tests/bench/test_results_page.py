"""The results page shows the registered formats' rungs with their latency, as JSON's."""

from __future__ import annotations

from bench import summary
from docs.gen.results import Run, ladder_section

AVRO = "5 streamscore, 1 process, Avro"
FORMATS = (AVRO, "5 streamscore, 1 process, JSON Schema", "5 streamscore, 1 process, Protobuf")


def _rung(name: str, key: str, p50: float) -> dict:
    points = [
        {"fraction_of_max": 0.5, "read_p50_ms": p50 + 1, "read_p99_ms": p50 + 9},
        {"rate": 1_000, "read_p50_ms": p50, "read_p99_ms": p50 + 8, "machine_cores_busy": 1.1},
    ]
    return {"rung": name, "key": key, "events_per_s": 5_000, "cpu_s_per_1000": 0.3, "latency": points}


def test_each_format_rung_has_its_latency_in_the_rung_table_and_the_table_at_equal_rates(tmp_path):
    rungs = [
        _rung("0 latency floor", "floor", 2.0),
        _rung("5 streamscore, 1 process", "streamscore", 11.0),
        *(_rung(name, f"streamscore-{key}", 12.0 + i) for i, (name, key) in enumerate(
            zip(FORMATS, ("avro", "json-schema", "protobuf"), strict=True))),
    ]  # fmt: skip
    ladder = {"plan": {"fractions": [0.5]}, "rungs": rungs, "latency_table": summary.latency_table(rungs)}
    ladder["ratios"] = summary.ratios(rungs)
    lines = ladder_section(
        Run(tmp_path / "2031-01-02.json", {"date": "2031-01-02T10:00", "ladder": ladder}), {}
    )
    rows = [line for line in lines if line.startswith("| 5 streamscore, 1 process, ")]
    assert [row.split(" | ")[0][2:] for row in rows] == list(FORMATS)
    assert all("not measured" not in row for row in rows)
    assert f"| {AVRO} | 5,000 | 0.300 |" in "\n".join(rows) and "13 / 21" in rows[0]
    by_rate = [line for line in lines if line.startswith("| 1,000 | 5 streamscore, 1 process, ")]
    assert [row.split(" | ")[1] for row in by_rate] == list(FORMATS)
    text = "\n".join(lines)
    assert f"| 1,000 | {AVRO} | 12.0 | 20.0 | 2.0 / 10.0 | 10.0 | 2.00 | 1.10 |" in text
    for figure in ("avro_read_p99_ms_at_1000` | 20", "protobuf_vs_json` | 1", "avro_cpu_s_per_1000` | 0.3"):
        assert figure in text
