"""The schema-change benchmark: both versions decode through one decoder, and each figure is there."""

from __future__ import annotations

from bench import evolution


def test_a_schema_change_is_measured_for_each_registered_format():
    found = evolution.run(quick=True)
    assert set(found) == {"avro", "json-schema", "protobuf"}
    for figures in found.values():
        assert isinstance(figures, dict) and "error" not in figures, figures
        assert figures["version_1_us"] > 0 and figures["version_2_us"] > 0
        assert figures["switching_vs_versions"] > 0
        assert figures["first_batch_of_a_new_id_us"] > figures["version_1_us"], "a new id builds its reader"
