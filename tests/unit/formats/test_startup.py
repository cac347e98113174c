"""Start-up choices: JSON needs no registry; registration under BACKWARD; provenance read back."""

from __future__ import annotations

import io
from collections.abc import Iterator

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from conftest import MODELS
from standin_registry import StandInRegistry

from stream.contracts import Provenance
from stream.errors import ConfigError, DecodeError
from stream.formats import startup
from stream.formats.avro import avro_schema, event_avro_schema
from stream.formats.base import dumps
from stream.formats.registry import StaticSchemas, header
from stream.scoring.codec import BatchDecoder
from stream.scoring.model import load_card, resolve
from stream.scoring.records import JSON_VALUES
from stream.settings import Settings
from stream.tools import apicurio

CARD = load_card(resolve(MODELS, "loan-approval"))
PROVENANCE = {
    "event_id": "e1", "score": 0.5,
    "input": {"topic": "events", "partition": 0, "offset": 3, "timestamp_ms": None},
    "model": {"name": "m", "version": "1", "sha256": "0" * 64}, "role": "champion",
    "feature_hash": "0" * 32, "personal": {"zipcode": "1" * 32},
    "scorer": {"version": "0", "revision": None, "worker_id": "w"},
    "occurred_at": 1, "received_at": 2, "scored_at": 3, "emitted_at": 4,
}  # fmt: skip


def test_json_needs_no_registry(monkeypatch):
    monkeypatch.setattr(startup, "registry_client", None)  # would fail if called
    decoder, serializers = startup.wire_codecs(Settings(), CARD)
    assert isinstance(decoder, BatchDecoder) and serializers == JSON_VALUES
    assert startup.provenance_reader(Settings()) is None


def test_plain_json_is_decoded_in_the_shape_the_settings_give():
    settings = Settings(event_id_field="txn_id", event_time_field="ts", features_field="")
    decoder, _ = startup.wire_codecs(settings, CARD)
    (event,) = decoder([b'{"txn_id": "t1", "ts": 1795771800125, "salary": 1.5, "channel": "web"}'])
    assert (event.event_id, event.features) == ("t1", {"salary": 1.5, "channel": "web"})


@pytest.fixture
def standin() -> Iterator[StandInRegistry]:
    with StandInRegistry() as registry:
        yield registry


def _registered(standin: StandInRegistry, document: dict, settings: Settings) -> None:
    standin.schemas[3] = (dumps(document), "AVRO")
    standin.subjects[f"{settings.input_topic}-value"] = 3


def test_start_up_checks_the_registered_schema_in_the_events_shape(standin):
    fields = [{"name": "channel", "type": "string"}, {"name": "ts", "type": "long"},
              *[{"name": f.name, "type": "long" if f.type == "integer" else "double"} for f in CARD.features],
              {"name": "txn_id", "type": "string"}]  # fmt: skip
    flat = Settings(input_format="avro", schema_registry_url=standin.url, schema_registry_timeout_s=1.0,
                    event_id_field="txn_id", event_time_field="ts", features_field="")  # fmt: skip
    _registered(standin, {"type": "record", "name": "Txn", "fields": fields}, flat)
    decoder, _ = startup.wire_codecs(flat, CARD)
    assert decoder([]) == []
    default = Settings(input_format="avro", schema_registry_url=standin.url, schema_registry_timeout_s=1.0)
    with pytest.raises(ConfigError, match=r"it has no field 'features'; .*STREAMSCORE_FEATURES_FIELD"):
        startup.wire_codecs(default, CARD)


def test_the_strict_mode_refuses_a_schema_declaring_a_field_it_does_not_read(standin):
    schema = event_avro_schema(CARD)
    schema["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
    strict = Settings(input_format="avro", schema_registry_url=standin.url, schema_registry_timeout_s=1.0,
                      unknown_fields="dead-letter")  # fmt: skip
    _registered(standin, schema, strict)
    with pytest.raises(ConfigError, match=r"it declares 'channel'.*STREAMSCORE_UNKNOWN_FIELDS=dead-letter"):
        startup.wire_codecs(strict, CARD)
    ignoring = Settings(input_format="avro", schema_registry_url=standin.url, schema_registry_timeout_s=1.0)
    assert startup.wire_codecs(ignoring, CARD)[0]([]) == []


class Registry:
    """The part of a registry client that registration uses."""

    def __init__(self, level: str, refuse: str | None = None) -> None:
        self.level, self.refuse, self.set = level, refuse, []

    def get_compatibility(self, subject=None):
        if subject is not None and self.level == "unset":
            raise SchemaRegistryError(404, 40401, "no config of its own")
        return "NONE" if self.level == "unset" else self.level

    def set_compatibility(self, subject, level):
        self.set.append((subject, level))

    def register_schema(self, subject, schema):
        if self.refuse:
            raise SchemaRegistryError(409, 409, self.refuse)
        return 17


@pytest.mark.parametrize(("level", "set_to"), [("unset", ["BACKWARD"]), ("NONE", ["BACKWARD"]), ("FULL", [])])
def test_a_subject_without_compatibility_gets_backward(level, set_to):
    registry = Registry(level)
    assert startup.register(registry, "p-value", Schema("{}", "JSON")) == 17
    assert [lvl for _, lvl in registry.set] == set_to


def test_an_incompatible_schema_stops_start_up_with_the_registrys_reason():
    registry = Registry("BACKWARD", refuse="Incompatible artifact: [threshold at /fields/4]")
    with pytest.raises(ConfigError, match=r"p-value is not BACKWARD compatible .*threshold at /fields/4"):
        startup.register(registry, "p-value", Schema("{}", "AVRO"))


def test_the_outcome_worker_reads_provenance_in_the_output_format(monkeypatch):
    schema = avro_schema(Provenance)
    monkeypatch.setattr(
        startup, "registry_client", lambda s: StaticSchemas({6: Schema(dumps(schema), "AVRO")})
    )
    read = startup.provenance_reader(Settings(output_format="avro", schema_registry_url="http://r"))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), PROVENANCE)
    record = read(header(6) + out.getvalue())
    assert (record.event_id, record.input.offset, record.personal) == ("e1", 3, PROVENANCE["personal"])
    with pytest.raises(DecodeError, match="not a registered provenance record"):
        read(b'{"event_id": "e1"}')
    with pytest.raises(DecodeError, match="not a registered provenance record"):
        read(header(6) + b"\xff")


def test_the_demo_starts_no_registry_for_json(monkeypatch):
    monkeypatch.delenv("STREAMSCORE_INPUT_FORMAT", raising=False)
    monkeypatch.delenv("STREAMSCORE_OUTPUT_FORMAT", raising=False)
    monkeypatch.setattr(apicurio, "Apicurio", None)  # would fail if started
    with apicurio.demo_registry():
        pass
