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
import operator
import secrets
from collections.abc import Sequence
from functools import cache
from typing import Any, Generic, TypeVar, cast

import numpy as np
import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from stream.contracts import MAX_FEATURES, MAX_STRING_LENGTH, Event, FeatureSpec
from stream.errors import DecodeError, FeatureError, PoisonEvent, SchemaError

FLOAT32_MAX = 3.4028234663852886e38
JSON_MAX_DEPTH = 201
"""Deepest nesting pydantic-core's JSON parser accepts (fixed there; a test pins it)."""
_MISSING = object()
_NUMBERS = frozenset((int, float))
_EXACT = 2.0**53
"""Ints up to this magnitude convert to float64 exactly."""
C = TypeVar("C", bound=BaseModel)


def decode(value: bytes | None, max_bytes: int, contract: type[C] = Event) -> C:  # type: ignore[assignment]
    """Validate raw bytes as a ``contract`` (an :class:`Event`); a :class:`PoisonEvent` says why not."""
    refused = _refuse_unparsed(value, max_bytes)
    if refused is not None:
        raise refused
    try:
        return contract.model_validate_json(value)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise schema_error(exc) from None


@cache
def _batch_adapter(contract: type[BaseModel]) -> TypeAdapter[dict[str, Any]]:
    return TypeAdapter(dict[str, contract])  # type: ignore[valid-type]


def _refuse_unparsed(value: bytes | None, max_bytes: int) -> DecodeError | None:
    if value is None:
        return DecodeError("empty value (tombstone): an event needs a JSON object")
    if len(value) > max_bytes:
        return DecodeError(f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit")
    return None


def schema_error(exc: ValidationError) -> PoisonEvent:
    """The poison a validation error of the Event contract makes: a decode or a schema error."""
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


class BatchDecoder(Generic[C]):
    """Validates a batch of values as events (or another ``contract``) in one pydantic call, with a
    result for each value.

    The values are joined into one JSON object, each under a key made of a per-process secret and
    its index, and validated as ``dict[str, Event]``. The batch is accepted only if its top-level
    keys are exactly those: a message that is not one JSON value on its own (``{..},{..`` and its
    neighbour closing it) would move a key inside a value or add one, and no message can write a
    key it does not know. Otherwise, and whenever a value is refused, each value is validated on its
    own, so every result and every reason is what :func:`decode` gives for that value alone.

    After a batch holding poison, the next batches are validated value by value until one is clean
    (a stream carrying poison would otherwise pay for both); the results are the same either way.
    """

    __slots__ = ("_adapter", "_contract", "_joined", "_keys", "_max_bytes", "_secret")

    def __init__(self, max_bytes: int, contract: type[C] = Event) -> None:  # type: ignore[assignment]
        self._max_bytes, self._contract = max_bytes, contract
        self._adapter = _batch_adapter(contract)
        self._secret = secrets.token_hex(16)
        self._keys: list[tuple[str, bytes]] = []  # (key, its JSON member prefix) by index
        self._joined = True

    def __call__(self, values: Sequence[bytes | None]) -> list[C | PoisonEvent]:
        decoded = self._joined_batch(values) if self._joined else None
        if decoded is None:
            decoded = [self._one(value) for value in values]
            self._joined = not any(isinstance(d, PoisonEvent) for d in decoded)
        return decoded

    def _one(self, value: bytes | None) -> C | PoisonEvent:
        try:
            return decode(value, self._max_bytes, self._contract)
        except PoisonEvent as exc:
            return exc

    def _joined_batch(self, values: Sequence[bytes | None]) -> list[C | PoisonEvent] | None:
        """The events, or None if any value is refused (or is not one JSON value on its own)."""
        n, max_bytes = len(values), self._max_bytes
        if any(v is None or len(v) > max_bytes for v in values):
            return None
        for i in range(len(self._keys), n):
            key = f"{self._secret}{i}"
            self._keys.append((key, f'"{key}":'.encode()))
        keys = self._keys[:n]
        members = [
            member + value for (_, member), value in zip(keys, cast(Sequence[bytes], values), strict=True)
        ]
        try:
            got = self._adapter.validate_json(b"{" + b",".join(members) + b"}")
        except ValidationError:
            return None
        if len(got) != n:
            return None
        try:
            return [got[key] for key, _ in keys]
        except KeyError:
            return None


class FeatureReader:
    """Checks an event's features against the card and returns them in the card's order."""

    __slots__ = ("_get", "_integers", "_max_features", "_max_string", "_names", "_personal", "_specs")

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
        names = [s.name for s in specs]
        get = operator.itemgetter(*names)
        self._get = get if len(names) > 1 else lambda features: (get(features),)
        self._integers = [i for i, s in enumerate(specs) if s.type == "integer"]

    def rows(self, batch: Sequence[dict[str, object]]) -> tuple[np.ndarray, list[FeatureError | None]]:
        """The rows of a batch as float32 in card order, and for each the error refusing it, or None.

        Equal to :meth:`row` for each (a refused event's row is zeros): a row is taken as it is only
        when ``row`` would take it unchanged (exactly the card's names, each value an int or a float,
        none beyond 2**53 so that it converts exactly, whole where the card says integer); any other
        goes through ``row``, which accepts it or says why not.
        """
        width, get = len(self._specs), self._get
        table: list[tuple[object, ...]] = []
        checked: list[int] = []  # events that go through row()
        zeros = (0,) * width
        for i, features in enumerate(batch):
            values = None
            if len(features) == width:
                try:
                    values = get(features)
                except KeyError:
                    pass
                else:
                    if not _NUMBERS.issuperset(map(type, values)):
                        values = None
            if values is None:
                checked.append(i)
                values = zeros
            table.append(values)
        try:
            x = np.array(table, dtype=np.float64).reshape(len(batch), width)
        except OverflowError:  # an int beyond float64: let row() refuse it
            x, checked = np.zeros((len(batch), width)), list(range(len(batch)))
        else:
            doubtful = ~(np.abs(x) <= _EXACT).all(axis=1)  # NaN too
            if self._integers:
                whole = x[:, self._integers]
                doubtful |= (whole != np.floor(whole)).any(axis=1)
            checked = sorted({*checked, *np.flatnonzero(doubtful).tolist()})
        errors: list[FeatureError | None] = [None] * len(batch)
        for i in checked:
            try:
                x[i] = self.row(batch[i])
            except FeatureError as exc:
                errors[i], x[i] = exc, 0
        return x.astype(np.float32), errors

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
