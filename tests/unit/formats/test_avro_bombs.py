"""Hostile Avro values: block counts that claim more items than the message's bytes can hold are refused
before the items are made, on the generated reader and on fastavro's; each message's memory stays
bounded, whatever its counts, byte sizes and nesting say."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema
from fuzz.outcomes import zigzag
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.errors import DecodeError
from stream.formats.avro import AvroDecoder
from stream.formats.avro_reader import Unsupported, avro_reader, compile_reader
from stream.formats.registry import StaticSchemas, header

PEAK_BYTES = 16 * 2**20
"""Generous: a bomb refused costs its bytes and a few small objects; accepted, hundreds of MB."""
DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}  # read by fastavro only


def record(*fields: tuple[str, object], name: str = "R") -> dict:
    return {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}


def array(items: object) -> dict:
    return {"type": "array", "items": items}


NULLS = record(("a", array("null")))
NESTED = record(("a", array(array("null"))))
NULL_RECORDS = record(
    ("pad", "string"), ("a", array(record(*((f"n{i}", "null") for i in range(100)), name="Nulls")))
)
FASTAVRO = record(("p", DECIMAL), ("a", array("null")), ("s", "string"))
FASTAVRO_MAP = record(("p", DECIMAL), ("m", {"type": "map", "values": "null"}))

BOMBS = {
    # the issue's: 6,663 blocks of 19,990 null items in 19,995 bytes
    "null-blocks": (NULLS, zigzag(19_990) * 6_663 + b"\x00"),
    # the same with negative counts, each followed by a byte size
    "negative-blocks": (NULLS, (zigzag(-19_990) + zigzag(0)) * 4_997 + b"\x00"),
    "negative-huge": (NULLS, zigzag(-(2**62)) + zigzag(1) + b"\x00"),
    # 4,996 arrays of 19,990 nulls each: every block below the message's size, 100 million items
    "nested": (NESTED, zigzag(4_996) + (zigzag(19_990) + b"\x00") * 4_996 + b"\x00"),
    # 19,990 records of 100 nulls each: two million values from one block
    "null-records": (NULL_RECORDS, zigzag(19_975) + b"x" * 19_975 + zigzag(19_990) + b"\x00"),
    "map": (record(("m", {"type": "map", "values": "null"})), zigzag(2**26) + b"\x00"),
    # the issue's: a 10-byte payload claiming 2**26 items, on a schema fastavro reads
    "fastavro": (FASTAVRO, b"\x00" + zigzag(2**26) + b"\x00" + zigzag(3) + b"abc"),
    "fastavro-negative": (FASTAVRO, b"\x00" + (zigzag(-19_990) + zigzag(0)) * 4_997 + b"\x00\x00"),
    "fastavro-map": (FASTAVRO_MAP, b"\x00" + zigzag(2**26) + b"\x00"),
}


def _reader(schema: dict):
    return avro_reader(Schema(json.dumps(schema), "AVRO"))


def test_the_fastavro_bombs_go_to_fastavro():
    for name in ("fastavro", "fastavro-negative", "fastavro-map"):
        with pytest.raises(Unsupported):
            compile_reader(BOMBS[name][0])
    assert len(BOMBS["fastavro"][1]) == 10 and len(header(1) + BOMBS["null-blocks"][1]) == 19_995


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_bomb_is_refused_before_its_items_are_made(name):
    schema, payload = BOMBS[name]
    read, value = _reader(schema), header(1) + payload
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"more than the \d+-byte message can hold"):
            read(value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MiB"


def test_a_bomb_is_a_dead_letter_saying_why():
    decoded = AvroDecoder(StaticSchemas({7: Schema(json.dumps(FASTAVRO), "AVRO")}), 65_536)(
        [header(7) + BOMBS["fastavro"][1]]
    )
    assert isinstance(decoded[0], DecodeError)
    assert "payload does not match Avro schema id 7: ValueError('a block of 67108864 items" in str(decoded[0])


NODE = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
DEEP = """
import json, sys
from confluent_kafka.schema_registry import Schema
from stream.formats.avro_reader import avro_reader
read = avro_reader(Schema(sys.argv[1], "AVRO"))
try:
    read(b"\\x00\\x00\\x00\\x00\\x01" + b"\\x02" * int(sys.argv[2]) + b"\\x00")
except ValueError as exc:
    print(exc)
"""


def test_a_value_nested_deeper_than_fastavro_can_read_is_refused():
    """fastavro reads by recursion in C: a recursive schema's chain of 5,000 crashes the process."""
    done = subprocess.run(
        [sys.executable, "-c", DEEP, json.dumps(NODE), "5000"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nested more than" in done.stdout
    assert _reader(NODE)(header(1) + b"\x02" * 100 + b"\x00")[1] == 106


ITEMS = st.sampled_from(["null", "long", ["null", "long"], record(("n", "null"), ("x", "null"), name="Two")])
COUNTS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([2**26, -(2**26), 2**31, 2**62, -(2**63), 19_990, -19_990]),
    st.integers(-(2**63), 2**63 - 1),
)
TOKENS = st.one_of(COUNTS.map(zigzag), st.binary(max_size=6))


@settings(max_examples=400, deadline=None)
@given(items=ITEMS, fastavro_path=st.booleans(), tokens=st.lists(TOKENS, max_size=30))
def test_any_block_counts_and_lengths_read_as_fastavro_or_are_refused(items, fastavro_path, tokens):
    """Random counts (negative ones with byte sizes) and lengths: never more items than bytes."""
    fields = [("p", DECIMAL)] if fastavro_path else []
    schema = record(*fields, ("a", array(items)), ("m", {"type": "map", "values": items}))
    value = header(1) + (b"\x00" if fastavro_path else b"") + b"".join(tokens)
    try:
        got, end = _reader(schema)(value)
    except Exception:  # refused: any reason will do here
        return
    assert len(got["a"]) + len(got["m"]) <= len(value)
    want = fastavro.schemaless_reader(io.BytesIO(value[5:end]), fastavro.parse_schema(schema), None)
    assert got == want
