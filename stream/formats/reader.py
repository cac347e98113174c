"""Any registered value read back by the writer schema its header names (``tail``, audit, the demo).

:class:`WireReader` decodes Avro and JSON Schema values with their writer's schema, fetched by id.
"""

from __future__ import annotations

import orjson

from stream.errors import PoisonEvent
from stream.formats.avro_reader import Reader, avro_reader
from stream.formats.registry import HEADER, MAGIC, SchemaSource, WriterSchemas


class WireReader:
    """Decodes wire-format values (Avro or JSON Schema) with their writer's schema, fetched by id."""

    def __init__(self, client: SchemaSource) -> None:
        self._avro: WriterSchemas[Reader] = WriterSchemas(client, "AVRO", avro_reader)
        self._json: WriterSchemas[None] = WriterSchemas(client, "JSON", lambda s: None)

    def __call__(self, value: bytes | None) -> tuple[str, object] | None:
        """(what it was, the decoded value) of a wire-format value; None if it is not one."""
        if not value or len(value) < HEADER.size or value[0] != MAGIC:
            return None
        sid = HEADER.unpack_from(value)[1]
        try:
            self._avro[sid]
        except PoisonEvent:
            try:
                self._json[sid]
            except PoisonEvent as exc:
                return f"schema id {sid}", f"undecodable: {exc}"
            return f"JSON Schema id {sid}", orjson.loads(value[HEADER.size :])
        try:
            return f"Avro schema id {sid}", self._avro[sid](value)[0]
        except Exception as exc:
            return f"Avro schema id {sid}", f"undecodable: {exc!r}"
