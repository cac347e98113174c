"""The generated Avro reader reads what fastavro reads, and refuses what is cut short or out of range."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import itertools
import json
import struct

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.formats.avro_reader import Unsupported, avro_reader, compile_reader
from stream.formats.registry import header

pytestmark = pytest.mark.unit

EVERYTHING = {
    "type": "record", "name": "Everything",
    "fields": [
        {"name": "nothing", "type": "null"},
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "single", "type": "float"},
        {"name": "ratio", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "maybe", "type": ["null", "string"]},
        {"name": "either", "type": ["long", "string", "null"]},
        {"name": "list", "type": {"type": "array", "items": ["null", "double"]}},
        {"name": "table", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "n", "type": "long"}, {"name": "s", "type": "string"}]}},
    ],
}  # fmt: skip
PARSED = fastavro.parse_schema(EVERYTHING)
LONGS = st.integers(-(2**63), 2**63 - 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROS = st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)  # years 1 to 9999
RECORDS = st.fixed_dictionaries({
    "nothing": st.none(),
    "flag": st.booleans(),
    "small": st.integers(-(2**31), 2**31 - 1),
    "big": LONGS,
    "single": st.floats(width=32, allow_nan=False),
    "ratio": st.floats(allow_nan=False),
    "blob": st.binary(max_size=40),
    "text": st.text(max_size=40),
    "digest": st.binary(min_size=4, max_size=4),
    "colour": st.sampled_from(["RED", "GREEN", "BLUE"]),
    "maybe": st.none() | st.text(max_size=10),
    "either": LONGS | st.text(max_size=10) | st.none(),
    "list": st.lists(st.none() | st.floats(allow_nan=False), max_size=5),
    "table": st.dictionaries(st.text(max_size=8), st.lists(LONGS, max_size=3), max_size=4),
    "at": MICROS.map(lambda n: EPOCH + dt.timedelta(microseconds=n)),
    "at_ms": MICROS.map(lambda n: EPOCH + dt.timedelta(milliseconds=n // 1000)),
    "inner": st.fixed_dictionaries({"n": LONGS, "s": st.text(max_size=10)}),
})  # fmt: skip
READ = compile_reader(EVERYTHING)


def _written(record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, PARSED, record)
    return out.getvalue()


def _fastavros(value: bytes, parsed=PARSED) -> object:
    return fastavro.schemaless_reader(io.BytesIO(value), parsed, None)


@settings(max_examples=300, deadline=None)
@given(RECORDS)
def test_records_read_as_fastavro_reads_them(record):
    value = _written(record)
    assert READ(value) == (_fastavros(value), len(value))


@settings(max_examples=100, deadline=None)
@given(RECORDS)
def test_a_value_cut_anywhere_is_refused(record):
    value = _written(record)
    for end in range(len(value)):
        with pytest.raises((ValueError, IndexError, struct.error)):
            READ(value[:end])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_read_as_fastavro_or_are_refused(value):
    try:
        record, end = READ(value)
    except (ValueError, IndexError, struct.error, OverflowError):
        return
    assert record == fastavro.schemaless_reader(io.BytesIO(value[:end]), PARSED, None)


def test_blocks_with_a_byte_size_and_several_blocks_read():
    schema = {"type": "array", "items": "long"}
    # two blocks: -2 items (4 bytes follow) [1, 2], then 1 item [3], then the end
    assert compile_reader(schema)(bytes([3, 8, 2, 4, 2, 6, 0])) == ([1, 2, 3], 7)


@pytest.mark.parametrize(
    ("schema", "value", "reason"),
    [
        ("boolean", b"\x02", "a boolean byte of 2"),
        ("long", b"\xff" * 11, "more than ten bytes"),
        ("string", b"\x01", "a length of -1"),
        ("string", b"\x08ab", "a length of 4 at 1 of 3 bytes"),
        (["null", "long"], b"\x04", "union index 2 of 2 branches"),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, b"\x02", "enum index 1 of 1"),
        (
            {"type": "array", "items": "null"},
            b"\x80\x08",
            "a block of 512 items at byte 2: more than the 2-byte",
        ),
        ("string", b"\x02\xff", "can't decode byte 0xff"),
    ],
)
def test_bad_values_are_refused_with_the_reason(schema, value, reason):
    with pytest.raises(ValueError, match=reason):
        compile_reader(schema)(value)


def test_what_is_not_generated_is_read_by_fastavro():
    price = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
    pair = {"type": "record", "name": "Pair", "fields": [{"name": "a", "type": "long"}]}
    fields = [{"name": "price", "type": price}, {"name": "again", "type": pair}]
    schema = {"type": "record", "name": "Priced", "fields": [*fields, {"name": "twice", "type": "Pair"}]}
    with pytest.raises(Unsupported):
        compile_reader(schema)
    parsed = fastavro.parse_schema(schema)
    out = io.BytesIO()
    record = {"price": decimal.Decimal("12.34"), "again": {"a": 1}, "twice": {"a": -2}}
    fastavro.schemaless_writer(out, parsed, record)
    value = header(7) + out.getvalue()
    assert avro_reader(Schema(json.dumps(schema), "AVRO"))(value) == (record, len(value))


def test_the_wire_reader_starts_after_the_header():
    record = {
        "nothing": None, "flag": True, "small": -3, "big": 2**40, "single": 0.5, "ratio": -1e300,
        "blob": b"\x00\xff", "text": "naïve", "digest": b"abcd", "colour": "BLUE", "maybe": None,
        "either": "x", "list": [None, 1.5], "table": {"k": [1, -1]},
        "at": dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        "at_ms": dt.datetime(1969, 7, 20, 20, 17, 40, 123000, tzinfo=dt.UTC), "inner": {"n": 0, "s": ""},
    }  # fmt: skip
    value = header(1) + _written(record)
    assert avro_reader(Schema(json.dumps(EVERYTHING), "AVRO"))(value) == (_fastavros(value[5:]), len(value))


def test_a_schema_is_data_in_the_generated_code():
    """Field names that read like code stay names; enum symbols stay data."""
    odd = "x'] = 1; import os; os._exit(3)  # \" \\n"
    schema = {
        "type": "record", "name": "Odd",
        "fields": [
            {"name": odd, "type": "long"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A'); os._exit(4)#"]}},
        ],
    }  # fmt: skip
    assert compile_reader(schema)(b"\x0e\x00") == ({odd: 7, "e": "A'); os._exit(4)#"}, 2)


def test_a_schema_nested_deeper_than_python_compiles_is_read_by_fastavro():
    schema: dict = {"type": "array", "items": "long"}
    for _ in range(40):  # Python allows 20 nested blocks
        schema = {"type": "array", "items": schema}
    record_schema = {"type": "record", "name": "Deep", "fields": [{"name": "a", "type": schema}]}
    with pytest.raises(Unsupported, match="nested too deep"):
        compile_reader(record_schema)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(record_schema), {"a": []})
    value = header(1) + out.getvalue()
    assert avro_reader(Schema(json.dumps(record_schema), "AVRO"))(value) == ({"a": []}, len(value))


TWICE = {**EVERYTHING, "fields": [*EVERYTHING["fields"], {"name": "again", "type": "Inner"}]}
TWICE_PARSED = fastavro.parse_schema(TWICE)
READ_TWICE = avro_reader(Schema(json.dumps(TWICE), "AVRO"))  # a named type used twice: fastavro reads it


def _fastavros_twice(value: bytes) -> object:
    return fastavro.schemaless_reader(io.BytesIO(value), TWICE_PARSED, None)


@settings(max_examples=200, deadline=None)
@given(RECORDS, st.fixed_dictionaries({"n": LONGS, "s": st.text(max_size=10)}))
def test_records_read_by_fastavro_pass_its_bounds(record, again):
    out = io.BytesIO()
    fastavro.schemaless_writer(out, TWICE_PARSED, {**record, "again": again})
    value = header(1) + out.getvalue()
    assert READ_TWICE(value) == (_fastavros_twice(value[5:]), len(value))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_read_as_fastavro_or_are_refused_on_its_path(value):
    try:
        record, end = READ_TWICE(header(1) + value)
    except Exception:  # refused: by the bounds or by fastavro
        return
    assert record == _fastavros_twice(value[: end - 5])


def _zigzag(n: int) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, "long", n)
    return out.getvalue()


def _blocked(items: list[bytes], sizes: list[int], negative: list[bool]) -> bytes:
    """``items`` in blocks of ``sizes`` (cycled), a block's count negative with its byte size after."""
    out, i = bytearray(), 0
    for size, minus in zip(itertools.cycle(sizes), itertools.cycle(negative), strict=False):
        if i >= len(items):
            break
        block = items[i : i + size]
        i += size
        body = b"".join(block)
        out += _zigzag(-len(block)) + _zigzag(len(body)) if minus else _zigzag(len(block))
        out += body
    return bytes(out + b"\x00")


TWO = {
    "type": "record",
    "name": "Two",
    "fields": [{"name": "n", "type": "null"}, {"name": "x", "type": "long"}],
}
ITEM_VALUES = {
    "null": st.none(), "long": LONGS, json.dumps(["null", "string"]): st.none() | st.text(max_size=5),
    json.dumps(TWO): st.fixed_dictionaries({"n": st.none(), "x": LONGS}),
}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(sorted(ITEM_VALUES)), st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_arrays_and_maps_in_any_blocks_read_as_fastavro_reads_them(data, item, sizes):
    """Written in blocks of any sizes, with counts positive or negative (a byte size after): read whole,
    on both readers."""
    kind = json.loads(item) if item[0] in "[{" else item
    valued = {**kind, "name": "Valued"} if isinstance(kind, dict) else kind  # a name is defined once
    listed = data.draw(st.lists(ITEM_VALUES[item], max_size=12))
    mapped = data.draw(st.dictionaries(st.text(max_size=4), ITEM_VALUES[item], max_size=8))
    negative = data.draw(st.lists(st.booleans(), min_size=1, max_size=4))
    parsed = fastavro.parse_schema(kind)
    entries = [_written_as("string", k) + _written_as(parsed, v) for k, v in mapped.items()]
    payload = _blocked([_written_as(parsed, v) for v in listed], sizes, negative)
    payload += _blocked(entries, sizes, negative)
    fixed = {"type": "fixed", "name": "F", "size": 1}
    fields = [
        {"name": "a", "type": {"type": "array", "items": kind}},
        {"name": "m", "type": {"type": "map", "values": valued}},
    ]
    generated = {"type": "record", "name": "Blocks", "fields": fields}
    twice = {**generated, "fields": [*fields, {"name": "p", "type": fixed}, {"name": "q", "type": "F"}]}
    want, nulls = {"a": listed, "m": mapped}, (len(listed) + len(mapped)) * (kind == "null")
    value = header(1) + payload + b"pq"
    for read, message, record in (
        (compile_reader(generated), payload, want),
        (avro_reader(Schema(json.dumps(twice), "AVRO")), value, {**want, "p": b"p", "q": b"q"}),
    ):
        if nulls > len(message):  # more items of no bytes than the message has bytes: refused
            with pytest.raises(ValueError, match="more than the"):
                read(message)
        else:
            assert read(message) == (record, len(message))


def _written_as(parsed: object, value: object) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, value)
    return out.getvalue()
