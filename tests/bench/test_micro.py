"""The micro-benchmarks run on the code as it is (they call the hot path's parts by name)."""

from __future__ import annotations

from bench import micro


def test_every_micro_benchmark_runs_and_gives_a_positive_time():
    report = micro.run(quick=True)
    assert {"decode_validate", "feature_row", "onnx_batch_64", "pipeline_per_event_batch_64"} <= set(report)
    split = report["pipeline_split_per_event_batch_64"]
    assert all(split[k] > 0 for k in ("decode_validate", "features", "score", "records"))
    assert report["feature_row"]["p50_us"] > 0 and report["decode_validate"]["p50_us"] > 0
