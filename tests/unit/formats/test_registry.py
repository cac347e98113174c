"""The wire header, the registry client's settings, and the cache of writer schemas by id."""

from __future__ import annotations

import contextlib
import json
import random
import re

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import ValidationError

from stream.errors import DecodeError
from stream.formats.bounds import SchemaLimits
from stream.formats.registry import StaticSchemas, WriterSchemas, client_conf, header, schema_id
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
        "timeout": 5.0,
        "max.retries": 0,
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


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _avro_record(fields: int) -> Schema:
    document = {
        "type": "record",
        "name": "W",
        "fields": [{"name": f"f{i}", "type": "long"} for i in range(fields)],
    }
    return Schema(json.dumps(document), "AVRO")


def test_a_miss_is_forgotten_after_its_ttl_so_a_schema_registered_later_is_found():
    clock, source = Clock(), StaticSchemas({})
    cache = WriterSchemas(
        source, "AVRO", lambda s: s.schema_str, limits=SchemaLimits(miss_ttl_s=60), clock=clock
    )
    with pytest.raises(DecodeError, match="schema id 6 is not in the registry"):
        cache[6]
    source.schemas[6] = Schema('"string"', "AVRO")  # registered meanwhile
    clock.now += 59
    with pytest.raises(DecodeError, match="not in the registry"):
        cache[6]  # still remembered: no request
    assert source.requests == 1
    clock.now += 2
    assert cache[6] == '"string"'
    assert source.requests == 2


def test_the_cache_of_schemas_and_misses_is_bounded_least_recently_used_first():
    source = StaticSchemas({i: Schema('"string"', "AVRO") for i in range(0, 100, 2)})
    cache = WriterSchemas(source, "AVRO", lambda s: s, limits=SchemaLimits(cache_ids=3, lookups_per_s=1e9))
    for sid in range(10):  # hits and misses alike
        with contextlib.suppress(DecodeError):
            cache[sid]
        with contextlib.suppress(DecodeError):
            cache[0]  # kept in use: never the least recent
    assert len(cache) == 3
    assert source.requests == 10, "id 0 was fetched once"
    with contextlib.suppress(DecodeError):
        cache[1]
    assert source.requests == 11, "id 1 was let go, and asked for again"


def test_the_cache_holds_a_bounded_number_of_fields():
    source = StaticSchemas({i: _avro_record(40) for i in range(10)})
    limits = SchemaLimits(cache_fields=100, max_fields=50)
    cache = WriterSchemas(source, "AVRO", lambda s: s, limits=limits)
    for sid in range(10):
        cache[sid]
    assert len(cache) == 2, "each schema weighs its 41 objects: two fit in 100"


def test_lookups_of_ids_never_seen_are_rate_limited_and_dead_lettered_beyond():
    clock, source = Clock(), StaticSchemas({})
    cache = WriterSchemas(source, "AVRO", lambda s: s, limits=SchemaLimits(lookups_per_s=5), clock=clock)
    reasons = []
    for sid in random.Random(3).sample(range(1, 2**31), 2_000):
        with pytest.raises(DecodeError) as caught:
            cache[sid]
        reasons.append(str(caught.value))
    assert source.requests == 5
    limited = [r for r in reasons if "lookups of unknown ids rate-limited" in r]
    assert len(limited) == 1_995 and "STREAMSCORE_SCHEMA_REGISTRY_LOOKUPS_PER_S" in limited[0]
    clock.now += 1.0
    for sid in range(10, 20):
        with contextlib.suppress(DecodeError):
            cache[sid]
    assert source.requests == 10, "five more a second later"


@pytest.mark.parametrize(
    ("schema", "limits", "reason"),
    [
        (
            _avro_record(2_000),
            SchemaLimits(max_bytes=1_000_000),
            "more than 1000 fields (STREAMSCORE_SCHEMA_MAX_FIELDS)",
        ),
        (_avro_record(2_000), SchemaLimits(), "65536-byte limit (STREAMSCORE_SCHEMA_MAX_BYTES)"),
        (
            Schema("[" * 40 + "]" * 40, "AVRO"),
            SchemaLimits(),
            "deeper than 32 levels (STREAMSCORE_SCHEMA_MAX_DEPTH)",
        ),
        (Schema("[" * 20_000 + "]" * 20_000, "AVRO"), SchemaLimits(), "deeper than 32 levels"),
    ],
)
def test_a_writer_schema_over_a_bound_is_refused_unparsed_and_remembered(schema, limits, reason):
    prepared = []
    cache = WriterSchemas(StaticSchemas({4: schema}), "AVRO", prepared.append, limits=limits)
    for _ in range(2):
        with pytest.raises(DecodeError, match=re.escape(reason)):
            cache[4]
    assert prepared == [], "never parsed"
    assert cache._client.requests == 1


def test_a_refusal_is_a_new_exception_each_time():
    """A cached exception raised again would keep each raise's frames (and their batches) alive."""
    cache = WriterSchemas(StaticSchemas({}), "AVRO", lambda s: s)
    caught = []
    for _ in range(2):
        try:
            cache[9]
        except DecodeError as exc:
            caught.append(exc)
    assert caught[0] is not caught[1]


def test_a_registry_timeout_must_end_before_the_shutdown_bound():
    """Else a SIGTERM during a lookup that hangs would end in the shutdown bound's message."""
    with pytest.raises(
        ValidationError, match="REGISTRY_TIMEOUT_S=10 must be below STREAMSCORE_SHUTDOWN_TIMEOUT_S=10"
    ):
        Settings(input_format="avro", schema_registry_url="http://r", schema_registry_timeout_s=10)
    with pytest.raises(ValidationError, match="STREAMSCORE_SCHEMA_CACHE_FIELDS"):
        Settings(schema_cache_fields=10, schema_max_fields=100)
