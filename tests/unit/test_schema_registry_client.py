"""The wire header, the registry client's settings, and the cache of writer schemas by id."""

from __future__ import annotations

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import ValidationError

from stream.errors import DecodeError
from stream.schema_registry.client import StaticSchemas, WriterSchemas, client_conf, header, schema_id
from stream.settings import Settings


def test_the_header_is_magic_byte_and_big_endian_id():
    assert header(258) == b"\x00\x00\x00\x01\x02"
    assert schema_id(header(258) + b"payload", 100) == 258


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"\x00\x00\x00", "too short"),
        (b'{"event_id": 1}', "magic byte 123"),
        (b"\x00" * 200, "exceeds the 100-byte limit"),
    ],
)
def test_a_value_without_a_wire_header_is_refused(value, reason):
    with pytest.raises(DecodeError, match=reason):
        schema_id(value, 100)


def test_writer_schemas_are_fetched_once_per_id_known_or_not():
    source = StaticSchemas({7: Schema('"string"', "AVRO"), 8: Schema("{}", "JSON")})
    cache = WriterSchemas(source, "AVRO", lambda s: None)  # a prepared value of None is an answer too
    for _ in range(3):
        assert cache[7] is None
        with pytest.raises(DecodeError, match="schema id 9 is not in the registry"):
            cache[9]
        with pytest.raises(DecodeError, match="schema id 8 is a JSON schema, not AVRO"):
            cache[8]
    assert source.requests == 3


def test_a_schema_the_parser_refuses_is_poison_not_a_crash():
    def refuse(schema):
        raise ValueError("bad schema")

    cache = WriterSchemas(StaticSchemas({1: Schema("{}", "AVRO")}), "AVRO", refuse)
    with pytest.raises(DecodeError, match="schema id 1 cannot be used: bad schema"):
        cache[1]


def test_the_client_takes_auth_and_tls_from_the_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = Settings(
        schema_registry_url="https://registry:8081",
        schema_registry_basic_auth_user_info="me:secret",
        schema_registry_ssl_ca_location=ca,
    )
    assert client_conf(settings) == {
        "url": "https://registry:8081",
        "basic.auth.user.info": "me:secret",
        "ssl.ca.location": str(ca),
    }


@pytest.mark.parametrize("field", ["input_format", "output_format"])
def test_a_registered_format_needs_a_registry(field):
    with pytest.raises(ValidationError, match=f"STREAMSCORE_{field.upper()}=avro needs STREAMSCORE_SCHEMA"):
        Settings(**{field: "avro"})


def test_a_registry_away_is_raised_not_cached_as_poison():
    """Not the message's fault: the loop ends without committing, and its restart asks again."""

    class Away:
        calls = 0

        def get_schema(self, schema_id):
            Away.calls += 1
            raise SchemaRegistryError(503, 50301, "unavailable")

    cache = WriterSchemas(Away(), "AVRO", lambda s: s)
    for _ in range(2):
        with pytest.raises(SchemaRegistryError):
            cache[1]
    assert Away.calls == 2
