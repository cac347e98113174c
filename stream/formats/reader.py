"""Any registered value read back by the writer schema its header names (``tail``, audit, the demo).

:class:`WireReader` decodes Avro, JSON Schema and Protobuf values with their writer's schema, fetched
by id, its format's reader built once per id.
"""

from __future__ import annotations

from confluent_kafka.schema_registry import Schema

from stream.errors import PoisonEvent
from stream.formats.bounds import SchemaLimits
from stream.formats.codecs import LABELS, Read, codec
from stream.formats.registry import ANY_TYPE, HEADER, MAGIC, SchemaSource, WriterSchemas


class WireReader:
    """Decodes wire-format values (any registered format) with their writer's schema, fetched by id."""

    def __init__(self, client: SchemaSource) -> None:
        self._schemas: WriterSchemas[tuple[str, Read]] = WriterSchemas(
            client, ANY_TYPE, _reader, limits=_AnyLimits()
        )

    def __call__(self, value: bytes | None) -> tuple[str, object] | None:
        """(what it was, the decoded value) of a wire-format value; None if it is not one."""
        if not value or len(value) < HEADER.size or value[0] != MAGIC:
            return None
        sid = HEADER.unpack_from(value)[1]
        try:
            kind, read = self._schemas[sid]
        except PoisonEvent as exc:
            return f"schema id {sid}", f"undecodable: {exc}"
        label = f"{LABELS.get(kind, kind)} id {sid}"
        try:
            return label, read(value)
        except Exception as exc:
            return label, f"undecodable: {exc!r}"


class _AnyLimits(SchemaLimits):
    """The bounds of a writer's schema of any type: a JSON document (Avro, JSON Schema) weighed as
    such, anything else as Protobuf (text, or a base64 descriptor)."""

    def weigh(self, schema_id: int, text: str) -> int:
        if text.lstrip()[:1] in ("{", "[", '"'):
            return super().weigh(schema_id, text)
        from stream.formats.protobuf_schema import ProtoLimits

        return ProtoLimits.of_limits(self).weigh(schema_id, text)


def _reader(schema: Schema) -> tuple[str, Read]:
    kind = schema.schema_type or "AVRO"  # Apicurio's lookup replies omit Avro's
    return kind, codec(kind).reader(schema)
