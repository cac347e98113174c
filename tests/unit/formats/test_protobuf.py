"""Protobuf input: confluent-kafka's values decode to the events of their JSON; every bad value,
message or writer's schema is a dead letter saying why, never an exception out of the decoder."""

from __future__ import annotations

import base64
import datetime as dt
import itertools

import orjson
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import MODELS
from google.protobuf import descriptor_pb2
from google.protobuf.message_factory import GetMessageClass

from stream.errors import DecodeError, PoisonEvent, SchemaError
from stream.formats.protobuf import ProtobufDecoder
from stream.formats.protobuf_schema import compile_schema
from stream.formats.protobuf_writer import event_proto_schema, protobuf_event_serializer
from stream.formats.registry import StaticSchemas, header
from stream.scoring.codec import BatchDecoder
from stream.scoring.events import DEFAULT_SHAPE
from stream.scoring.features import FeatureReader
from stream.scoring.model import load_card, resolve
from stream.tools.produce import MALFORMED, events

CARD = load_card(resolve(MODELS, "loan-approval"))
JSON = [value for _, value, *_ in itertools.islice(events(seed=3), 24)]
FEATURES = "\n".join(f"    optional double {f.name} = {n};" for n, f in enumerate(CARD.features, 1))
ENVELOPE = """  string event_id = 1;
  google.protobuf.Timestamp occurred_at = 2;
  optional string entity_id = 3;"""
HEAD = 'syntax = "proto3";\npackage shop;\nimport "google/protobuf/timestamp.proto";\n'
SHOP = f"""{HEAD}
message Ping {{ string id = 1; }}
// the event is the second top-level message: its values name it by the indexes [1]
message Event {{
{ENVELOPE}
  Features features = 4;
  message Features {{
{FEATURES}
  }}
}}
"""
NESTED = f"""{HEAD}
message Ping {{ string id = 1; }}
message Holder {{
  message Other {{ string x = 1; }}
  message Event {{
  {ENVELOPE}
    Event.Features features = 4;
    message Features {{
  {FEATURES}
    }}
  }}
}}
"""
V2 = f"""{HEAD}
message Ping {{ string id = 1; }}
message Event {{
  string event_id = 1;
  google.protobuf.Timestamp occurred_at = 2;
  reserved 3;
  Features features = 4;
  string channel = 5;
  message Features {{
{FEATURES}
  }}
}}
"""


def _class(text: str, name: str):
    return GetMessageClass(compile_schema(text).pool.FindMessageTypeByName(name))


def _message(cls, event: bytes):
    fields = orjson.loads(event)
    return cls(**{**fields, "occurred_at": dt.datetime.fromisoformat(fields["occurred_at"])})


def _confluent(text: str, name: str) -> tuple[MockSchemaRegistryClient, list[bytes]]:
    """The events written by confluent-kafka's serializer (registering the schema as it does)."""
    client = MockSchemaRegistryClient({"url": "mock://protobuf"})
    cls = _class(text, name)
    serialize = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    context = SerializationContext("events", MessageField.VALUE)
    return client, [serialize(_message(cls, value), context) for value in JSON]


@pytest.mark.parametrize(
    ("text", "name", "indexes"),
    [(SHOP, "shop.Event", b"\x02\x02"), (NESTED, "shop.Holder.Event", b"\x04\x02\x02")],
)
def test_confluents_values_decode_to_the_events_of_their_json(text, name, indexes):
    client, values = _confluent(text, name)
    assert all(v[5 : 5 + len(indexes)] == indexes for v in values)  # [1] and [1, 1]: not the first message
    decoder = ProtobufDecoder(client, 65_536, card=CARD)
    assert decoder(values) == BatchDecoder(65_536)(JSON)


def test_text_and_base64_schemas_read_the_same_values():
    client, values = _confluent(SHOP, "shop.Event")
    registered = client.get_schema(1).schema_str
    assert not registered.startswith("syntax") and base64.b64decode(registered)  # confluent's: base64
    source = StaticSchemas({1: Schema(registered, "PROTOBUF"), 2: Schema(SHOP, "PROTOBUF")})
    as_text = [header(2) + value[5:] for value in values]
    assert ProtobufDecoder(source, 65_536, card=CARD)(values + as_text) == BatchDecoder(65_536)(JSON + JSON)


def test_two_versions_of_a_message_are_read_side_by_side():
    """v2 drops entity_id and adds channel; a v2 value under v1's id has a field v1 does not know."""
    old, new = _class(SHOP, "shop.Event"), _class(V2, "shop.Event")
    event = orjson.loads(JSON[0])
    v1 = header(1) + b"\x02\x02" + _message(old, JSON[0]).SerializeToString()
    fields = {k: v for k, v in event.items() if k != "entity_id"}
    v2 = b"\x02\x02" + _message(new, orjson.dumps({**fields, "channel": "web"})).SerializeToString()
    source = StaticSchemas({1: Schema(SHOP, "PROTOBUF"), 2: Schema(V2, "PROTOBUF")})
    decoder = ProtobufDecoder(source, 65_536, shape=DEFAULT_SHAPE, card=CARD)
    got = decoder([v1, header(2) + v2, header(1) + v2])
    assert not any(isinstance(g, PoisonEvent) for g in got), got
    assert got[0].entity_id == event["entity_id"] and got[1].entity_id is None and got[2].entity_id is None
    assert got[1].__pydantic_extra__ == {"channel": "web"}
    assert got[2].__pydantic_extra__ == {}  # a field v1 does not know: skipped
    assert {g.features["salary"] for g in got} == {event["features"]["salary"]}


MAP = f"""{HEAD}
enum Channel {{ WEB = 0; APP = 1; }}
message Event {{
{ENVELOPE}
  map<string, double> features = 4;
  Channel channel = 5;
  repeated string tags = 6;
}}
"""


def test_map_features_enums_and_repeated_fields_read_as_dicts_names_and_lists():
    cls, event = _class(MAP, "shop.Event"), orjson.loads(JSON[0])
    message = _message(cls, orjson.dumps({**event, "channel": "APP", "tags": ["a", "b"]}))
    zero = _message(cls, orjson.dumps({**event, "features": {}}))
    source = StaticSchemas({1: Schema(MAP, "PROTOBUF")})
    values = [header(1) + b"\x00" + m.SerializeToString() for m in (message, zero)]
    got = ProtobufDecoder(source, 65_536, shape=DEFAULT_SHAPE, card=CARD)(values)
    assert got[0].features == event["features"]  # map<string, double> carries the card
    assert got[0].__pydantic_extra__ == {"channel": "APP", "tags": ["a", "b"]}
    assert got[1].__pydantic_extra__ == {"channel": "WEB", "tags": []}  # proto3: an enum not set is its zero


def _descriptor_importing(name: str) -> str:
    proto = descriptor_pb2.FileDescriptorProto(name="x.proto", syntax="proto3", dependency=[name])
    proto.message_type.add(name="Event")
    return base64.b64encode(proto.SerializeToString()).decode()


HOSTILE_SCHEMAS = {
    3: Schema(HEAD + 'import "other.proto";\nmessage Event { string event_id = 1; }', "PROTOBUF"),
    4: Schema(_descriptor_importing("other.proto"), "PROTOBUF"),
    5: Schema('syntax = "proto3";\nmessage Event {\n  strin event_id = 1;\n}', "PROTOBUF"),
    6: Schema('{"type": "record", "name": "Event", "fields": []}', "PROTOBUF"),
    7: Schema('{"type": "record", "name": "Event", "fields": []}', "AVRO"),
    8: Schema(base64.b64encode(b"\xff\xff\xff").decode(), "PROTOBUF"),
}


def test_hostile_values_and_schemas_are_dead_letters_saying_why():
    good = protobuf_event_serializer(1, SHOP.replace("message Ping { string id = 1; }", ""))(JSON[0])
    cases = [
        (good[:-3], "payload does not match Protobuf schema id 1: DecodeError"),  # cut inside a double
        (header(1) + b"\x02\x0a" + good[6:], "message indexes [5] name no message of the schema"),
        (header(1) + b"\x80\x89\x7a" + good[6:], "1000000 message indexes, where the schema"),  # nest 2 deep
        (header(1) + b"\xff" * 11, "cut short or a varint of more than ten bytes"),
        (header(1), "no message indexes after the header"),
        (header(1) + b"\x02\x02" + good[6:], "message indexes [1] name no message"),
        (header(3) + good[5:], "schema id 3 cannot be used: it imports 'other.proto'"),
        (header(4) + good[5:], "schema id 4 cannot be used: it imports 'other.proto'"),
        (header(5) + good[5:], "schema id 5 cannot be used: protoc refuses it at line 3, column 3"),
        (header(6) + good[5:], "schema id 6 cannot be used: protoc refuses it at line 1"),
        (header(7) + good[5:], "schema id 7 is a AVRO schema, not PROTOBUF"),
        (header(8) + good[5:], "schema id 8 cannot be used: neither .proto text nor the base64"),
        (header(9) + good[5:], "schema id 9 is not in the registry"),
    ]
    text = SHOP.replace("message Ping { string id = 1; }", "")
    source = StaticSchemas({1: Schema(text, "PROTOBUF"), **HOSTILE_SCHEMAS})
    got = ProtobufDecoder(source, 65_536, card=CARD)([value for value, _ in cases] + [good])
    for (_, reason), decoded in zip(cases, got, strict=False):
        assert isinstance(decoded, DecodeError) and reason in str(decoded), (reason, decoded)
    assert got[-1] == BatchDecoder(65_536)([JSON[0]])[0]


CARRIES_NOT = {
    "missing": (FEATURES.splitlines()[-1], "", "feature 'loan' of the model card is not among its"),
    "string": ("optional double salary", "optional string salary", "feature 'salary' is string there"),
    "repeated": ("optional double age", "repeated double age", "feature 'age' is repeated double"),
    "no time": ("google.protobuf.Timestamp occurred_at", "double occurred_at", "'occurred_at' is double"),
}


@pytest.mark.parametrize("kind", sorted(CARRIES_NOT))
def test_the_values_of_a_message_that_cannot_carry_the_card_are_refused_naming_the_field(kind):
    old, new, reason = CARRIES_NOT[kind]
    text = SHOP.replace(old, new)
    value = header(1) + b"\x02\x02" + b""  # an empty message: the message, not the payload, is refused
    decoder = ProtobufDecoder(StaticSchemas({1: Schema(text, "PROTOBUF")}), 65_536, card=CARD)
    got = decoder([value, value])
    assert all(isinstance(g, SchemaError) for g in got)
    assert str(got[0]) == str(got[1]) and str(got[0]).startswith(
        "writer schema id 1 message shop.Event cannot carry the features of model loan-approval: "
    )
    assert reason in str(got[0])
    unchecked = ProtobufDecoder(StaticSchemas({1: Schema(text, "PROTOBUF")}), 65_536)([value])[0]
    assert "cannot carry" not in str(unchecked)  # without a card, only the contract refuses


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_json_event_sent_as_protobuf_is_refused(kind):
    """What the producer cannot write goes as its JSON behind the header; the rest the contract and
    the card's check refuse (a feature not set is missing, not 0)."""
    value = MALFORMED[kind][1](orjson.loads(JSON[0]))
    serialized = protobuf_event_serializer(1, event_proto_schema(CARD))(value)
    decoded = ProtobufDecoder(StaticSchemas({1: Schema(event_proto_schema(CARD), "PROTOBUF")}), 65_536)(
        [serialized]
    )[0]
    if not isinstance(decoded, PoisonEvent):
        assert FeatureReader(CARD.features).rows([decoded.features]).errors[0] is not None, kind


def test_the_event_serializer_writes_the_first_message_the_decoder_reads():
    text = event_proto_schema(CARD)
    values = [protobuf_event_serializer(7, text)(v) for v in JSON]
    assert all(v[:6] == header(7) + b"\x00" for v in values)
    decoder = ProtobufDecoder(StaticSchemas({7: Schema(text, "PROTOBUF")}), 65_536, card=CARD)
    assert decoder(values) == BatchDecoder(65_536)(JSON)


def test_a_null_the_schema_would_read_as_zero_goes_as_json():
    """A field without presence cannot say null: the event is sent as it is, for the worker to refuse."""
    plain = SHOP.replace("optional double salary", "double salary").replace("message Ping", "message P")
    event = orjson.loads(JSON[0])
    broken = orjson.dumps({**event, "features": {**event["features"], "salary": None}})
    assert protobuf_event_serializer(2, plain)(broken) == header(2) + b"\x00" + broken
    assert protobuf_event_serializer(2, event_proto_schema(CARD))(broken) != header(2) + b"\x00" + broken


def test_fields_named_as_python_keywords_are_read_by_the_generated_converter():
    text = MAP.replace(
        "message Event {", "message Event {\n  optional string from = 90;\n  double lambda = 91;"
    )
    cls, event = _class(text, "shop.Event"), orjson.loads(JSON[0])
    message = _message(cls, orjson.dumps({**event, "lambda": 2.5}))
    setattr(message, "from", "web")
    source = StaticSchemas({1: Schema(text, "PROTOBUF")})
    got = ProtobufDecoder(source, 65_536, shape=DEFAULT_SHAPE, card=CARD)(
        [header(1) + b"\x00" + message.SerializeToString()]
    )
    assert got[0].__pydantic_extra__["from"] == "web" and got[0].__pydantic_extra__["lambda"] == 2.5
