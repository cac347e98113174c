"""Protobuf schemas: compiled per id and bounded, the message indexes, the carry check at start-up,
the outputs' pinned ``.proto`` files, and predictions and provenance that confluent-kafka reads back."""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import tempfile
from pathlib import Path

import orjson
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry._sync.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import MODELS
from google.protobuf import descriptor_pb2
from google.protobuf.message_factory import GetMessageClass

from stream.contracts import Prediction, Provenance
from stream.errors import DecodeError
from stream.formats.bounds import SchemaLimits
from stream.formats.protobuf import (
    CODEC,
    ProtobufDecoder,
    protobuf_record,
    protobuf_refusal,
    protobuf_schemas,
)
from stream.formats.protobuf_schema import ProtoLimits, compile_schema, read_indexes, write_indexes
from stream.formats.protobuf_writer import (
    event_proto_schema,
    proto_schema,
    proto_schemas,
    protobuf_serializer,
)
from stream.formats.registry import StaticSchemas, header
from stream.messages import inbound
from stream.scoring.events import EventShape
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline, Topics
from stream.tools.produce import events

SCHEMAS = Path(__file__).parents[3] / "schemas"
MODEL = load(MODELS, "loan-approval")
CARD = MODEL.card


def test_checked_in_proto_files_are_current():
    expected = proto_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMAS.glob("*.proto")}
    assert set(on_disk) == set(expected), "run `streamscore schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, f"schemas/{name} is stale: run `streamscore schemas`"


def test_output_fields_are_numbered_in_declaration_order():
    for model in (Prediction, Provenance):
        message = compile_schema(proto_schema(model)).message_types_by_name[model.__name__]
        assert [(f.name, f.number) for f in message.fields] == [
            (name, n) for n, name in enumerate(model.model_fields, 1)
        ]


def _records() -> tuple[list[dict], list[dict]]:
    """The predictions and provenance the record builder makes for a batch (with fragments)."""
    captured: list[dict] = []

    def capture(record: dict) -> bytes:
        captured.append(record)
        return b""

    capture.takes_datetimes = True  # type: ignore[attr-defined]
    scorer = {"version": "0", "revision": None, "worker_id": "w"}
    pipeline = Pipeline(
        MODEL, Topics("p", "v", "d"), pii_key=b"k", scorer=scorer, max_message_bytes=65_536,
        serialize=(capture, capture),
    )  # fmt: skip
    values = [v for _, v, *_ in itertools.islice(events(seed=2), 16)]
    batch = [inbound(v, b"k", "events", offset=i, timestamp_ms=i or None) for i, v in enumerate(values)]
    assert pipeline.process(batch).scored == 16
    return captured[0::2], captured[1::2]


def _plain(value):
    return orjson.loads(orjson.dumps(value)) if type(value) is orjson.Fragment else value


def _assert_holds(message, record: dict) -> None:
    """``message`` (read by protobuf) holds ``record``'s values: None as not set, datetimes as Timestamps."""
    for name, value in record.items():
        value = _plain(value)
        kind = message.DESCRIPTOR.fields_by_name[name].message_type
        if value is None:
            assert not message.HasField(name), name
        elif isinstance(value, dt.datetime):
            assert getattr(message, name).ToDatetime(tzinfo=dt.UTC) == value, name
        elif isinstance(value, dict) and kind.GetOptions().map_entry:
            assert dict(getattr(message, name)) == value, name
        elif isinstance(value, dict):
            _assert_holds(getattr(message, name), value)
        else:
            assert getattr(message, name) == value, name


@pytest.mark.parametrize("name", ["prediction", "provenance"])
def test_confluents_deserializer_reads_back_the_records_written(name):
    predictions, provenance = _records()
    records = predictions if name == "prediction" else provenance
    model = Prediction if name == "prediction" else Provenance
    text = proto_schema(model)
    cls = GetMessageClass(compile_schema(text).message_types_by_name[model.__name__])
    write = protobuf_serializer(5, text)
    assert write.takes_datetimes  # type: ignore[attr-defined]
    read = ProtobufDeserializer(cls, {"use.deprecated.format": False})
    context = SerializationContext("t", MessageField.VALUE)
    for record in records:
        value = write(record)
        assert value[:6] == header(5) + b"\x00"
        _assert_holds(read(value, context), record)
    assert any(r["input"]["timestamp_ms"] is None for r in provenance)  # an optional not set, tried


def test_the_outputs_read_back_validate_as_the_contracts():
    """An optional field not set reads as None; a map cannot be optional: no probabilities (or reasons)
    read as none."""
    predictions, provenance = _records()
    for model, records in ((Prediction, predictions), (Provenance, provenance)):
        text = proto_schema(model)
        read, write = CODEC.reader(Schema(text, "PROTOBUF")), protobuf_serializer(3, text)
        for record in records:
            expected = {k: _plain(v) for k, v in record.items()}
            for name in ("probabilities", "reasons") if model is Prediction else ():
                if expected.get(name) is None:
                    expected[name] = {}
            assert model.model_validate(read(write(record))) == model.model_validate(expected)


def test_a_message_the_encoder_does_not_write_is_written_by_upb():
    text = 'syntax = "proto3";\nmessage Row { repeated string tags = 1; optional int64 n = 2; }'
    write = protobuf_serializer(4, text)
    cls = GetMessageClass(compile_schema(text).message_types_by_name["Row"])
    assert cls.FromString(write({"tags": ["a", "b"], "n": None})[6:]) == cls(tags=["a", "b"])


@pytest.mark.parametrize("indexes", [[0], [1], [0, 0], [3, 1, 2], [127, 200]])
def test_message_indexes_are_written_as_confluent_writes_them(indexes):
    out = io.BytesIO()
    ProtobufSerializer._encode_varints(out, indexes)
    assert write_indexes(indexes) == out.getvalue()
    written = out.getvalue()
    assert read_indexes(header(1) + written + b"rest", 5, 3) == (tuple(indexes), 5 + len(written))


SHAPES = [
    EventShape(),
    EventShape(unknown_fields="dead-letter"),
    EventShape(features_field=""),
    EventShape(id_field="id", time_field="ts", features_field="payload.inputs"),
]


@pytest.mark.parametrize("shape", SHAPES, ids=["default", "strict", "flat", "dotted"])
def test_the_schema_made_for_a_card_carries_it_in_its_shape(shape):
    text = event_proto_schema(CARD, shape)
    assert protobuf_refusal(text, CARD, shape) is None
    base64_of = base64.b64encode(compile_schema(text).serialized_pb).decode()
    assert protobuf_refusal(base64_of, CARD, shape) is None
    other = SHAPES[3] if shape != SHAPES[3] else SHAPES[0]
    assert protobuf_refusal(text, CARD, other) is not None


def test_start_up_refusals_say_why():
    strict = EventShape(unknown_fields="dead-letter")
    entity = "optional string entity_id = 3;"
    extra = event_proto_schema(CARD).replace(entity, f"{entity}\n  int64 n = 5;")
    assert "it declares 'n', a field the event's shape does not read" in protobuf_refusal(extra, CARD, strict)
    assert protobuf_refusal('syntax = "proto3";', CARD, strict) == "it declares no message"
    assert "protoc refuses it" in protobuf_refusal("message {", CARD, strict)
    with pytest.raises(ValueError, match="'loan-amount' is not a Protobuf field name"):
        feature = CARD.features[0].model_copy(update={"name": "loan-amount"})
        event_proto_schema(CARD.model_copy(update={"features": [feature]}))


def _wide(fields: int, depth: int) -> str:
    inner = " ".join(f"int64 f{n} = {n};" for n in range(1, fields + 1))
    for level in range(depth):
        inner = f"message M{level} {{ {inner} }}"
    return f'syntax = "proto3";\n{inner}\n'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_wide(50, 1), "its schema has more than 40 fields"),
        (_wide(1, 9), "its schema nests deeper than 8 levels"),
        (_wide(1, 1) + "// " + "x" * 5000, "exceeds the 4096-byte limit"),
    ],
)
def test_a_schema_over_the_bounds_is_refused_as_text_and_as_descriptor(text, reason):
    limits = ProtoLimits(max_bytes=4096, max_fields=40, max_depth=8)
    with pytest.raises(DecodeError, match=reason):
        limits.weigh(1, text)
    if "byte limit" not in reason:
        with pytest.raises(DecodeError, match=reason):
            limits.weigh(1, base64.b64encode(compile_schema(text).serialized_pb).decode())
    assert limits.weigh(1, _wide(10, 2)) > 10


def test_the_decoders_limits_weigh_protobuf_schemas():
    source = StaticSchemas({1: Schema(_wide(50, 1), "PROTOBUF"), 2: Schema(_wide(10, 1), "PROTOBUF")})
    decoder = ProtobufDecoder(source, 65_536, SchemaLimits(max_fields=40))
    refused, read = decoder([header(1) + b"\x00", header(2) + b"\x00"])
    assert "its schema has more than 40 fields" in str(refused) and "cannot be used" not in str(read)


def test_protoc_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    compile_schema(event_proto_schema(CARD))
    with pytest.raises(ValueError, match="protoc refuses it"):
        compile_schema('syntax = "proto3";\nmessage {')
    assert list(tmp_path.iterdir()) == []


def test_a_message_holding_itself_is_read():
    text = 'syntax = "proto3";\nmessage Node { string id = 1; Node next = 2; map<string, Node> kids = 3; }'
    cls = GetMessageClass(compile_schema(text).message_types_by_name["Node"])
    node = cls(id="a", next={"id": "b", "next": {"id": "c"}}, kids={"k": {"id": "d"}})
    value = header(1) + b"\x00" + node.SerializeToString()
    schemas = protobuf_schemas(StaticSchemas({1: Schema(text, "PROTOBUF")}))
    assert protobuf_record(value, schemas) == {
        "id": "a",
        "next": {"id": "b", "next": {"id": "c", "kids": {}}, "kids": {}},
        "kids": {"k": {"id": "d", "kids": {}}},
    }
    read = CODEC.reader(Schema(text, "PROTOBUF"))  # an output's reader: a message not set is None
    assert read(value)["next"]["next"] == {"id": "c", "next": None, "kids": {}}


def test_a_descriptor_with_a_bad_field_name_is_refused():
    proto = descriptor_pb2.FileDescriptorProto(name="x.proto", package="x", syntax="proto3")
    proto.message_type.add(name="Event").field.add(name="a.b", number=1, type=9, label=1)
    with pytest.raises(ValueError, match="not a usable Protobuf schema"):
        compile_schema(base64.b64encode(proto.SerializeToString()).decode())
