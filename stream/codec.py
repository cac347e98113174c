"""Bytes at the edge: input bytes to a validated event and feature row; output records to bytes.

``decode`` applies the :class:`~stream.contracts.Event` contract with pydantic on the raw bytes,
then :class:`FeatureReader` checks the features against the model card and returns them as a row
in the card's order. Output records are built as plain dicts and serialised with orjson; tests
check that they validate against the contracts.

Input is bounded before it costs much: a message over ``max_bytes`` is refused unparsed; the parser
(pydantic-core's jiter) stops at the first level deeper than :data:`JSON_MAX_DEPTH`, whatever
follows (a valid event nests two levels); an event with more than ``max_features`` features, or a
feature name or string value longer than ``max_string_length``, is refused before its features are
read. Each is a :class:`~stream.errors.PoisonEvent` whose message names the bound.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson
from pydantic import ValidationError

from stream.contracts import Event, FeatureSpec
from stream.errors import DecodeError, FeatureError, PoisonEvent, SchemaError

FLOAT32_MAX = 3.4028234663852886e38
JSON_MAX_DEPTH = 201
"""Deepest nesting pydantic-core's JSON parser accepts (fixed there; a test pins it)."""
MAX_FEATURES = 256
MAX_STRING_LENGTH = 256
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
        if "recursion limit exceeded" in first["msg"]:
            return DecodeError(
                f"JSON nested more than {JSON_MAX_DEPTH} levels deep: the parser stops at that depth"
            )
        return DecodeError(f"not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}")
    where = ".".join(str(p) for p in first["loc"]) or "event"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return SchemaError(f"{where}: {first['msg']}{more}")


class FeatureReader:
    """Checks an event's features against the card and returns them in the card's order."""

    __slots__ = ("_max_features", "_max_string", "_names", "_personal", "_specs")

    def __init__(
        self,
        specs: Sequence[FeatureSpec],
        max_features: int = MAX_FEATURES,
        max_string_length: int = MAX_STRING_LENGTH,
    ) -> None:
        self._specs = [(s.name, s.type == "integer") for s in specs]
        self._names = frozenset(s.name for s in specs)
        self._personal = frozenset(s.name for s in specs if s.personal)
        self._max_features, self._max_string = max_features, max_string_length

    def row(self, features: dict[str, object]) -> list[float]:
        """The feature values in card order, or :class:`FeatureError` naming the first problem.

        A broken bound (feature count, string length) is named before any other problem; string
        lengths are only looked at once the event is refused anyway, so valid events pay nothing.
        """
        if len(features) > self._max_features:
            raise FeatureError(f"{len(features)} features: more than the limit of {self._max_features}")
        row: list[float] = []
        append = row.append
        for name, integer in self._specs:
            value = features.get(name, _MISSING)
            kind = type(value)
            if kind is float:
                if not -FLOAT32_MAX <= value <= FLOAT32_MAX:  # type: ignore[operator]
                    raise self._error(features, name, value, "numbers must be finite float32")
                if integer and not value.is_integer():  # type: ignore[union-attr]
                    raise self._error(features, name, value, "a whole number is required")
            elif kind is int:
                if not -FLOAT32_MAX <= value <= FLOAT32_MAX:  # type: ignore[operator]
                    raise self._error(features, name, value, "out of float32 range")
            elif value is _MISSING:
                raise self._error(features, reason=f"feature {name!r} is missing")
            else:
                number = f"a {'whole ' if integer else ''}number is required"
                raise self._error(features, reason=f"feature {name!r} is {_json_type(value)}: {number}")
            append(value)  # type: ignore[arg-type]
        if len(features) != len(row):
            unknown = sorted(set(features) - self._names)
            raise self._error(features, reason=f"unknown feature{'s' if len(unknown) > 1 else ''} {unknown}")
        return row

    def _error(
        self,
        features: dict[str, object],
        name: str = "",
        value: object = None,
        why: str = "",
        reason: str = "",
    ) -> FeatureError:
        """The error refusing ``features``: a broken string bound if any, else ``reason``.

        Without a ``reason``, it is ``feature <name> is <value>: <why>``, where the value of a
        personal feature is never shown.
        """
        limit = self._max_string
        for key, item in features.items():
            if len(key) > limit:
                return FeatureError(
                    f"a feature name of {len(key)} characters: longer than the limit of {limit}"
                )
            if type(item) is str and len(item) > limit:
                return FeatureError(
                    f"feature {key!r} is a string of {len(item)} characters: longer than the limit of {limit}"
                )
        if not reason:
            shown = "a personal value" if name in self._personal else repr(value)
            reason = f"feature {name!r} is {shown}: {why}"
        return FeatureError(reason)


def _json_type(value: object) -> str:
    names = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def keyed_hash(key: bytes, data: bytes) -> str:
    """Keyed BLAKE2b-128, hex: stable for one key, useless to anyone without it."""
    return hashlib.blake2b(data, digest_size=16, key=key).hexdigest()


dumps = orjson.dumps
