"""Bytes at the edge: input bytes to a validated event and feature row; output records to bytes.

``decode`` applies the :class:`~stream.contracts.Event` contract with pydantic on the raw bytes,
then :class:`FeatureReader` checks the features against the model card and returns them as a row
in the card's order. Output records are built as plain dicts and serialised with orjson; tests
check that they validate against the contracts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson
from pydantic import ValidationError

from stream.contracts import Event, FeatureSpec
from stream.errors import DecodeError, FeatureError, PoisonEvent, SchemaError

FLOAT32_MAX = 3.4028234663852886e38
_MISSING = object()


def decode(value: bytes | None, max_bytes: int) -> Event:
    """Validate raw bytes as an :class:`Event`; raise a :class:`PoisonEvent` saying why not."""
    if value is None:
        raise DecodeError("empty value (tombstone): an event needs a JSON object")
    if len(value) > max_bytes:
        raise DecodeError(f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit")
    try:
        return Event.model_validate_json(value)
    except ValidationError as exc:
        raise _schema_error(exc) from None


def _schema_error(exc: ValidationError) -> PoisonEvent:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return DecodeError(f"not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}")
    where = ".".join(str(p) for p in first["loc"]) or "event"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return SchemaError(f"{where}: {first['msg']}{more}")


class FeatureReader:
    """Checks an event's features against the card and returns them in the card's order."""

    __slots__ = ("_integer", "_names", "_specs")

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self._specs = [(s.name, s.type == "integer") for s in specs]
        self._names = frozenset(s.name for s in specs)

    def row(self, features: dict[str, object]) -> list[float]:
        """The feature values in card order, or :class:`FeatureError` naming the first problem."""
        row: list[float] = []
        append = row.append
        for name, integer in self._specs:
            value = features.get(name, _MISSING)
            kind = type(value)
            if kind is float:
                if not -FLOAT32_MAX <= value <= FLOAT32_MAX:  # type: ignore[operator]
                    raise FeatureError(f"feature {name!r} is {value!r}: numbers must be finite float32")
                if integer and not value.is_integer():  # type: ignore[union-attr]
                    raise FeatureError(f"feature {name!r} is {value!r}: a whole number is required")
            elif kind is int:
                if not -FLOAT32_MAX <= value <= FLOAT32_MAX:  # type: ignore[operator]
                    raise FeatureError(f"feature {name!r} is {value!r}: out of float32 range")
            elif value is _MISSING:
                raise FeatureError(f"feature {name!r} is missing")
            else:
                raise FeatureError(
                    f"feature {name!r} is {_json_type(value)}: a {'whole ' if integer else ''}number "
                    "is required"
                )
            append(value)  # type: ignore[arg-type]
        if len(features) != len(row):
            unknown = sorted(set(features) - self._names)
            raise FeatureError(f"unknown feature{'s' if len(unknown) > 1 else ''} {unknown}")
        return row


def _json_type(value: object) -> str:
    names = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def keyed_hash(key: bytes, data: bytes) -> str:
    """Keyed BLAKE2b-128, hex: stable for one key, useless to anyone without it."""
    return hashlib.blake2b(data, digest_size=16, key=key).hexdigest()


dumps = orjson.dumps
