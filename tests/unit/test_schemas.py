"""The JSON Schema documents in schemas/ are generated from the contracts and kept current."""

from __future__ import annotations

from pathlib import Path

from stream.contracts import json_schemas

SCHEMAS = Path(__file__).parents[2] / "schemas"


def test_checked_in_schemas_are_current():
    expected = json_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMAS.glob("*.schema.json")}
    assert set(on_disk) == set(expected), "run `streamscore schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, f"schemas/{name} is stale: run `streamscore schemas`"


def test_dead_letter_schema_uses_kafka_connect_header_names():
    import json

    props = json.loads(json_schemas()["dead-letter-headers.schema.json"])["properties"]
    assert "__connect.errors.exception.message" in props and "__connect.errors.offset" in props
