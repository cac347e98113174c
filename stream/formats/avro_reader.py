"""A fast Avro reader for registered input: one Python function generated per writer's schema.

fastavro's ``schemaless_reader`` reads a value through a file object, a call per field and per
byte of a varint: 5.6 µs at best for an event of the demo card, where pydantic parses and validates
the same event's JSON in 2.5. A writer's schema is known when its id is first seen, so
:func:`compile_reader` generates straight-line code for it once, reading the bytes by index (3.2 µs):
null, boolean, int, long, float, double, bytes, string, fixed, enum, records, arrays, maps,
unions, and ``timestamp-millis``/``timestamp-micros`` (to UTC datetimes, as fastavro gives them).
A schema using anything else (another logical type, a named type used twice) is read by fastavro
(:func:`avro_reader` chooses); either way a record is the dict fastavro gives (a test compares
them on generated records).

The schema comes from the registry, as untrusted as the messages: of it, only field names (written
as Python literals, ``repr``) and integers (a fixed's size, counts) enter the generated code; enum
symbols stay data.

A reader returns the record and the offset after it; a payload that is cut short, has a varint of
more than ten bytes, a negative length, a union or enum index out of range, a boolean byte other
than 0 or 1, a string that is not UTF-8, or arrays and maps claiming more items than the message
can hold (:mod:`~stream.formats.avro_bounds`, on both readers) raises (the caller makes it
a dead letter).
"""

# compile_reader is over 60 lines on purpose: it and its inner read() are one recursive code
# generator whose every branch emits lines into one body with one scope of names; split into
# functions they would pass that state around, and the bounds each branch emits would be harder
# to check against the ones beside it.

from __future__ import annotations

import datetime as dt
import io
import json
import struct
from collections.abc import Callable
from itertools import count
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema

from stream.formats.avro_bounds import Scan, min_width, refusal, zero_width
from stream.formats.registry import HEADER

Reader = Callable[[bytes], tuple[Any, int]]
"""A registered value to (its record, the offset after it)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ZIGZAG = tuple((n >> 1) ^ -(n & 1) for n in range(128))
"""The values of one-byte varints."""
_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
_TIMESTAMPS = {"timestamp-millis": "_td(0, 0, 0, {v})", "timestamp-micros": "_td(0, 0, {v})"}


class Unsupported(ValueError):
    """The schema uses what :func:`compile_reader` does not generate code for."""


def avro_reader(schema: Schema) -> Reader:
    """A reader of wire-format values holding a record of ``schema`` (after the 5-byte header).

    fastavro checks the schema first (an invalid one raises); the reader is generated when the
    schema allows it, fastavro's otherwise.
    """
    document, start, named = json.loads(schema.schema_str), HEADER.size, {}
    parsed = fastavro.parse_schema(document, named_schemas=named)
    try:
        return compile_reader(document, start)
    except Unsupported:
        pass
    read, scan = fastavro.schemaless_reader, Scan(parsed, named)

    def fastavros(value: bytes) -> tuple[Any, int]:
        if scan.needed:  # refuses what fastavro would make too much of, or recurse too deep for
            scan(value, start)
        stream = io.BytesIO(value)
        stream.seek(start)
        return read(stream, parsed, None), stream.tell()

    return fastavros


def compile_reader(schema: Any, start: int = 0) -> Reader:
    """A function reading one value of ``schema`` from offset ``start``; :class:`Unsupported` if the
    schema uses a type or logical type it does not read."""
    names = count()
    body: list[str] = []
    scope: dict[str, Any] = {
        "_double": struct.Struct("<d").unpack_from, "_float": struct.Struct("<f").unpack_from,
        "_EPOCH": _EPOCH, "_td": dt.timedelta, "_ZIGZAG": _ZIGZAG, "_refusal": refusal,
    }  # fmt: skip

    def varint(out: str, indent: str) -> None:
        """Lines reading a zigzag varint (an int, a long, a length, an index) into ``out``."""
        body.extend(
            f"{indent}{line}"
            for line in (
                "b = buf[pos]",
                "pos += 1",
                "if b < 128:",
                f"    {out} = _ZIGZAG[b]",
                "else:",
                f"    {out}, s = b & 127, 7",
                "    while b & 128:",
                "        if s > 63:",
                "            raise ValueError('a varint of more than ten bytes')",
                "        b = buf[pos]",
                "        pos += 1",
                f"        {out} |= (b & 127) << s",
                "        s += 7",
                f"    {out} = ({out} >> 1) ^ -({out} & 1)",
            )
        )

    def length(out: str, indent: str) -> None:
        """Lines reading a length and checking the bytes are there."""
        varint(out, indent)
        body.append(f"{indent}if {out} < 0 or pos + {out} > size:")
        body.append(f"{indent}    raise ValueError(f'a length of {{{out}}} at {{pos}} of {{size}} bytes')")

    def read(kind: Any, out: str, indent: str) -> None:
        """Lines setting ``out`` to the value of ``kind`` read at ``pos``."""
        if isinstance(kind, list):
            index = f"i{next(names)}"
            varint(index, indent)
            for i, branch in enumerate(kind):
                body.append(f"{indent}{'if' if i == 0 else 'elif'} {index} == {i}:")
                read(branch, out, indent + "    ")
            body.append(f"{indent}else:")
            body.append(f"{indent}    raise ValueError(f'union index {{{index}}} of {len(kind)} branches')")
            return
        if isinstance(kind, str):
            if kind not in _PRIMITIVES:
                raise Unsupported(f"named type {kind!r}")
            kind = {"type": kind}
        name, logical = kind["type"], kind.get("logicalType")
        if logical is not None:
            if logical not in _TIMESTAMPS or name != "long":
                raise Unsupported(f"logical type {logical!r} on {name!r}")
            varint(out, indent)
            body.append(f"{indent}{out} = _EPOCH + {_TIMESTAMPS[logical].format(v=out)}")
        elif name == "null":
            body.append(f"{indent}{out} = None")
        elif name == "boolean":
            body.append(f"{indent}b = buf[pos]")
            body.append(f"{indent}pos += 1")
            body.append(f"{indent}if b > 1:")
            body.append(f"{indent}    raise ValueError(f'a boolean byte of {{b}}')")
            body.append(f"{indent}{out} = b == 1")
        elif name in ("int", "long"):
            varint(out, indent)
        elif name in ("float", "double"):
            body.append(f"{indent}{out} = _{name}(buf, pos)[0]")
            body.append(f"{indent}pos += {4 if name == 'float' else 8}")
        elif name in ("bytes", "string"):
            n = f"n{next(names)}"
            length(n, indent)
            decode = ".decode()" if name == "string" else ""
            body.append(f"{indent}{out} = buf[pos : pos + {n}]{decode}")
            body.append(f"{indent}pos += {n}")
        elif name == "fixed":
            width = int(kind["size"])
            body.append(f"{indent}if pos + {width} > size:")
            body.append(f"{indent}    raise ValueError('a fixed of {width} bytes cut short')")
            body.append(f"{indent}{out} = buf[pos : pos + {width}]")
            body.append(f"{indent}pos += {width}")
        elif name == "enum":
            symbols, index = f"_symbols{next(names)}", f"i{next(names)}"
            scope[symbols] = tuple(kind["symbols"])
            varint(index, indent)
            body.append(f"{indent}if not 0 <= {index} < {len(scope[symbols])}:")
            body.append(f"{indent}    raise ValueError(f'enum index {{{index}}} of {len(scope[symbols])}')")
            body.append(f"{indent}{out} = {symbols}[{index}]")
        elif name == "record":
            values = []
            for field in kind["fields"]:
                value = f"v{next(names)}"
                read(field["type"], value, indent)
                values.append(f"{field['name']!r}: {value}")
            body.append(f"{indent}{out} = {{{', '.join(values)}}}")
        elif name in ("array", "map"):
            blocks(kind, name, out, indent)
        else:
            raise Unsupported(f"type {name!r}")

    def blocks(kind: dict[str, Any], name: str, out: str, indent: str) -> None:
        """Lines reading an array's or a map's blocks: a count (negative: a byte size follows), the
        items, until a count of 0; a count the message cannot hold is refused first (see
        :mod:`~stream.formats.avro_bounds`)."""
        n, item, key = f"n{next(names)}", f"x{next(names)}", f"k{next(names)}"
        items = kind["items" if name == "array" else "values"]
        width, zeros = min_width(items) + (name == "map"), zero_width(items)
        over = ["items < 0"]
        over += [f"{n} * {width} > size - pos"] if width else []
        over += [f"(zeros := zeros - {n} * {zeros}) < 0"] if zeros else []
        body.append(f"{indent}{out} = {'[]' if name == 'array' else '{}'}")
        body.append(f"{indent}while True:")
        inner = indent + "    "
        varint(n, inner)
        body.append(f"{inner}if {n} == 0:")
        body.append(f"{inner}    break")
        body.append(f"{inner}if {n} < 0:")
        body.append(f"{inner}    {n} = -{n}")
        varint("_", inner + "    ")
        body.append(f"{inner}items -= {n}")
        body.append(f"{inner}if {' or '.join(over)}:")
        body.append(f"{inner}    raise _refusal({n}, pos, size)")
        body.append(f"{inner}for _ in range({n}):")
        if name == "map":
            length("m", inner + "    ")
            body.append(f"{inner}    {key} = buf[pos : pos + m].decode()")
            body.append(f"{inner}    pos += m")
        read(items, item, inner + "    ")
        body.append(
            f"{inner}    " + (f"{out}.append({item})" if name == "array" else f"{out}[{key}] = {item}")
        )

    try:
        read(schema, "record", "    ")
        lines = [
            "def read(buf):",
            "    pos, size = START, len(buf)",
            "    items = zeros = size",
            *body,
            "    return record, pos",
        ]
        source = "\n".join(lines)
        scope["START"] = start
        exec(source, scope)  # of the schema, only field names (as reprs) and integers are in the code
    except (RecursionError, SyntaxError) as exc:  # nested deeper than Python's parser or blocks allow
        raise Unsupported(f"schema nested too deep: {exc}") from None
    reader: Reader = scope["read"]
    return reader
