"""Protobuf writer schemas, compiled once per schema id, and the message indexes of the wire format.

A registry holds a Protobuf schema as ``.proto`` text (what a producer registering text sent) or as
the base64 of a serialized ``FileDescriptorProto`` (what confluent-kafka's ``ProtobufSerializer``
registers). Text is compiled by protoc (grpc_tools, in process) in a temporary directory with only
protobuf's well-known types on the include path; either way the file goes into a descriptor pool of
its own, so two versions of a message (``shop.Event``) live side by side under their ids.

The schema is as untrusted as the messages naming it: its size, statements and nesting are bounded
before protoc sees it (:class:`ProtoLimits`); an import of anything but ``google/protobuf/*`` is
refused (registry references are not followed); protoc's first error becomes a one-line reason;
nothing of it is executed.

A value is the wire header, then its message's path in the file: zigzag varints, a count then each
index (the single byte 0 stands for ``[0]``, the file's first message), then the message's bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import (
    any_pb2,
    api_pb2,
    descriptor_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    type_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError as ProtoDecodeError
from grpc_tools import _protoc_compiler, protoc

from stream.errors import DecodeError
from stream.formats.bounds import SchemaLimits
from stream.formats.registry import one_line

WELL_KNOWN: dict[str, FileDescriptor] = {
    module.DESCRIPTOR.name: module.DESCRIPTOR
    for module in (any_pb2, api_pb2, descriptor_pb2, duration_pb2, empty_pb2, field_mask_pb2,
                   source_context_pb2, struct_pb2, timestamp_pb2, type_pb2, wrappers_pb2)
}  # fmt: skip
"""protobuf's well-known files by name: the only imports a writer's schema may have."""
_INCLUDE = str(resources.files("grpc_tools") / "_proto")
_NAME = "schema.proto"
_COMMENTS_AND_STRINGS = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'', re.S)
_IMPORT = re.compile(r'\bimport\s+(?:(?:public|weak)\s+)?("(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\')')
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def is_text(schema: str) -> bool:
    """``.proto`` text, rather than the base64 of a ``FileDescriptorProto``."""
    return _BASE64.fullmatch(schema.strip()) is None


def compile_schema(schema: str) -> FileDescriptor:
    """A writer's schema (text or base64) as a file of a descriptor pool of its own; ValueError with
    a one-line reason when it cannot be."""
    proto = _compiled(schema) if is_text(schema) else _decoded(schema)
    pool = DescriptorPool()
    for name in proto.dependency:
        _add_well_known(pool, name)
    if not proto.name:
        proto.name = _NAME
    try:
        return pool.AddSerializedFile(proto.SerializeToString())  # type: ignore[no-any-return]
    except Exception as exc:  # a descriptor protobuf cannot build: a duplicate name, an unknown type
        raise ValueError(f"not a usable Protobuf schema: {one_line(exc)}") from None


def _decoded(schema: str) -> descriptor_pb2.FileDescriptorProto:
    try:
        return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(schema.strip(), validate=True))
    except (binascii.Error, ProtoDecodeError, RecursionError) as exc:
        raise ValueError(
            f"neither .proto text nor the base64 of a FileDescriptorProto ({one_line(exc)})"
        ) from None


def _compiled(text: str) -> descriptor_pb2.FileDescriptorProto:
    """``text`` compiled by protoc with only the well-known types to import."""
    bare = _COMMENTS_AND_STRINGS.sub(lambda m: m.group() if m.group()[0] in "\"'" else " ", text)
    for found in _IMPORT.finditer(bare):
        _check_import(found.group(1)[1:-1])
    with tempfile.TemporaryDirectory(prefix="streamscore-proto-") as folder:
        Path(folder, _NAME).write_text(text, encoding="utf-8")
        try:  # the same compiler, its errors as values rather than lines on stderr
            _protoc_compiler.get_protos(_NAME.encode(), [folder.encode(), _INCLUDE.encode()])
        except _protoc_compiler.ProtocErrors as exc:
            first = exc.errors()[0]
            where = f"line {first.line + 1}, column {first.column + 1}" if first.line >= 0 else "its text"
            raise ValueError(f"protoc refuses it at {where}: {one_line(first.message.decode())}") from None
        out = Path(folder, "schema.pb")
        args = ["protoc", f"-I{folder}", f"-I{_INCLUDE}", "--include_imports", f"--descriptor_set_out={out}"]
        if protoc.main([*args, _NAME]) != 0:
            raise ValueError("protoc refuses it")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return next(f for f in files if f.name == _NAME)


def _check_import(name: str) -> None:
    if name not in WELL_KNOWN:
        raise ValueError(
            f"it imports {name!r}: only protobuf's well-known types (google/protobuf/*.proto) can be "
            "imported; registry references are not followed"
        )


def _add_well_known(pool: DescriptorPool, name: str) -> None:
    """The well-known file ``name`` and what it imports, into ``pool``."""
    _check_import(name)
    try:
        pool.FindFileByName(name)
        return
    except KeyError:
        pass
    for dependency in WELL_KNOWN[name].dependencies:
        _add_well_known(pool, dependency.name)
    pool.AddSerializedFile(WELL_KNOWN[name].serialized_pb)


class ProtoSchema:
    """A writer's schema compiled; ``messages``: what is made of its messages, by index path."""

    __slots__ = ("depth", "file", "messages", "nulls")

    def __init__(self, file: FileDescriptor, nulls: bool = False) -> None:
        """``nulls``: a field that is not set reads as None (else it is left out of the record)."""
        self.file, self.nulls = file, nulls
        self.depth = _depth(list(file.message_types_by_name.values()))
        self.messages: dict[tuple[int, ...], Any] = {}

    def descriptor(self, indexes: tuple[int, ...]) -> Descriptor:
        """The message at ``indexes``; ValueError if the file has none there."""
        level = list(self.file.message_types_by_name.values())
        message = None
        for index in indexes:
            if not 0 <= index < len(level):
                raise ValueError(f"message indexes {list(indexes)} name no message of the schema")
            message = level[index]
            level = list(message.nested_types)
        if message is None:
            raise ValueError("no message indexes")
        return message


def _depth(top: list[Descriptor]) -> int:
    """How deep messages nest in a file (1: top-level messages only)."""
    deepest, stack = 0, [(m, 1) for m in top]
    while stack:
        message, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((m, depth + 1) for m in message.nested_types)
    return deepest


def read_indexes(value: bytes, pos: int, depth: int) -> tuple[tuple[int, ...], int]:
    """The message indexes at ``pos`` of ``value`` and the offset after them; ValueError when they
    are cut short or more than ``depth`` (how deep the file's messages nest)."""
    if pos >= len(value):
        raise ValueError("no message indexes after the header")
    if value[pos] == 0:
        return (0,), pos + 1
    count, pos = _varint(value, pos)
    if not 0 < count <= depth:
        raise ValueError(f"{count} message indexes, where the schema's messages nest {depth} deep")
    indexes = []
    for _ in range(count):
        index, pos = _varint(value, pos)
        indexes.append(index)
    return tuple(indexes), pos


def _varint(value: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint of at most ten bytes at ``pos``, and the offset after it."""
    result = shift = 0
    for at in range(pos, min(pos + 10, len(value))):
        byte = value[at]
        result |= (byte & 127) << shift
        if byte < 128:
            return (result >> 1) ^ -(result & 1), at + 1
        shift += 7
    raise ValueError("message indexes cut short or a varint of more than ten bytes")


def write_indexes(indexes: tuple[int, ...] | list[int]) -> bytes:
    """The bytes of message indexes (``[0]``: the single byte 0)."""
    if list(indexes) == [0]:
        return b"\x00"
    out = bytearray()
    for n in (len(indexes), *indexes):
        n = (n << 1) ^ (n >> 63)
        while n > 127:
            out.append((n & 127) | 128)
            n >>= 7
        out.append(n)
    return bytes(out)


@dataclass(frozen=True)
class ProtoLimits(SchemaLimits):
    """:class:`SchemaLimits` weighing a Protobuf schema: statements and blocks of its text, or the
    messages, fields and enum values of its descriptor, each one field."""

    def weigh(self, schema_id: int, text: str) -> int:
        size = len(text.encode())
        if size > self.max_bytes:
            raise DecodeError(
                f"schema id {schema_id}: its schema of {size} bytes exceeds the {self.max_bytes}-byte "
                "limit (STREAMSCORE_SCHEMA_MAX_BYTES)"
            )
        try:
            depth, fields = _text_weight(text) if is_text(text) else _descriptor_weight(_decoded(text))
        except ValueError as exc:
            raise DecodeError(f"schema id {schema_id} cannot be used: {exc}") from None
        if depth > self.max_depth:
            raise DecodeError(
                f"schema id {schema_id}: its schema nests deeper than {self.max_depth} levels "
                "(STREAMSCORE_SCHEMA_MAX_DEPTH)"
            )
        if fields > self.max_fields:
            raise DecodeError(
                f"schema id {schema_id}: its schema has more than {self.max_fields} fields "
                "(STREAMSCORE_SCHEMA_MAX_FIELDS)"
            )
        return max(fields, 1)

    @classmethod
    def of_limits(cls, limits: SchemaLimits | None) -> ProtoLimits:
        if isinstance(limits, ProtoLimits):
            return limits
        return cls() if limits is None else cls(**vars(limits))


def _text_weight(text: str) -> tuple[int, int]:
    """How deep the blocks of ``.proto`` text nest, and its statements and blocks."""
    bare = _COMMENTS_AND_STRINGS.sub(" ", text)
    deepest = depth = 0
    for char in bare:
        if char in "{<[":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "}>]":
            depth -= 1
    return deepest, bare.count(";") + bare.count("{")


def _descriptor_weight(proto: descriptor_pb2.FileDescriptorProto) -> tuple[int, int]:
    """How deep the messages of a descriptor nest, and its messages, fields and enum values."""
    deepest, fields = 0, sum(1 + len(e.value) for e in proto.enum_type)
    stack = [(m, 1) for m in proto.message_type]
    while stack:
        message, depth = stack.pop()
        deepest = max(deepest, depth)
        fields += 1 + len(message.field) + sum(1 + len(e.value) for e in message.enum_type)
        stack.extend((m, depth + 1) for m in message.nested_type)
    return deepest, fields
