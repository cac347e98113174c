"""The field types the contracts (:mod:`stream.contracts`) share: ids, hashes, event times.

Every check runs inside pydantic-core (lengths, a Rust regex, datetime bounds): the Event contract
is validated for every input event, and a Python call per value would cost more than the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

__all__ = ["EARLIEST", "LATEST", "NO_CONTROL_CHARACTERS", "EventTime", "Identifier", "InputId", "Sha256"]

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""No character of Unicode category Cc (C0, DEL, C1): the commands print the ids of inputs."""
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""The event times accepted: the range in which a time and its epoch seconds (a float) convert both ways."""


class _Printable:
    """Refuses control characters with a reason that says so, in pydantic-core's regex engine."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        check = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=NO_CONTROL_CHARACTERS),
            "control_character",
            custom_error_message="control characters (U+0000-U+001F, U+007F-U+009F) are not allowed",
        )
        return core_schema.chain_schema([handler(source), check])

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        document = handler(schema)
        document["pattern"] = NO_CONTROL_CHARACTERS
        return document


InputId = Annotated[Identifier, _Printable()]
"""The id of an input record (event, outcome): an :data:`Identifier` without control characters."""
EventTime = Annotated[AwareDatetime, Field(ge=EARLIEST, le=LATEST)]
"""When an event happened: with an offset, from :data:`EARLIEST` to :data:`LATEST`."""
