"""Bytes at the edge: input bytes to a validated event and feature row; output records to bytes.

``decode`` applies the :class:`~stream.contracts.Event` contract with pydantic on the raw bytes
(:mod:`stream.scoring.features` then reads the features the card names). Output records are built
as plain dicts and serialised with orjson; tests check that they validate against the contracts.

Input is bounded before it costs much: a message over ``max_bytes`` is refused unparsed; the parser
(pydantic-core's jiter) stops at the first level deeper than :data:`JSON_MAX_DEPTH`, whatever
follows (a valid event nests two levels). Each is a :class:`~stream.errors.PoisonEvent` whose
message names the bound.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from functools import cache
from typing import Any, Generic, TypeVar, cast

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from stream.contracts import Event
from stream.errors import DecodeError, PoisonEvent, SchemaError
from stream.messages import Inbound

JSON_MAX_DEPTH = 201
"""Deepest nesting pydantic-core's JSON parser accepts (fixed there; a test pins it)."""
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


def keyed_hash(key: bytes, data: bytes) -> str:
    """Keyed BLAKE2b-128, hex: stable for one key, useless to anyone without it."""
    return hashlib.blake2b(data, digest_size=16, key=key).hexdigest()


dumps = orjson.dumps


def refuse_long_keys(batch: Sequence[Inbound], decoded: list[Event | PoisonEvent], max_key: int) -> None:
    """Make each event whose key is longer than ``max_key`` bytes a dead letter (its prediction
    would carry the key), unless it is refused already."""
    for i, msg in enumerate(batch):
        key = msg.key()
        if key is not None and len(key) > max_key and not isinstance(decoded[i], PoisonEvent):
            decoded[i] = DecodeError(
                f"key of {len(key)} bytes exceeds the {max_key}-byte limit (STREAMSCORE_MAX_KEY_BYTES)"
            )
