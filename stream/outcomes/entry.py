"""One pending entry of the outcome join, and its two encodings: on disk, and in the changelog.

On disk (RocksDB, trusted: the worker's own folder) an entry is 29 bytes: flags, the time it was
stored and the time it was joined (ms), the score, and the number of its model in the store's
model table. In the changelog (a Kafka topic, untrusted until its signature holds) the model is
spelled out (``name/version sha256``), so that a record means the same on any host; the store
signs and verifies it. :func:`from_wire` checks a record's fields and their coherence before an
entry is built from it: anything else reads as absent.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

__all__ = ["Entry", "from_local", "from_wire", "to_local", "to_wire"]

_LOCAL = struct.Struct(">BqqdI")  # flags, stored_ms, joined_ms, score, model number
_WIRE = struct.Struct(">Bqqd")  # the same, then the model as text
_PREDICTION, _OUTCOME, _POSITIVE = 1, 2, 4
_MAX_MODEL = 512
LOCAL_SIZE = _LOCAL.size


class Entry(NamedTuple):
    """What the join keeps of an event: its prediction (model, score), its outcome, or both."""

    stored_ms: int  # event time (ms) of the record that made the entry: retention counts from it
    model: str | None = None  # name/version of the prediction's model; None while only the outcome is in
    sha256: str = ""
    score: float = 0.0
    positive: bool | None = None  # the outcome, once known
    joined_ms: int = 0  # when the second half arrived; 0 while waiting

    @property
    def joined(self) -> bool:
        return self.joined_ms > 0


def coherent(e: Entry) -> bool:
    """Times not negative, a prediction or an outcome, both when joined, a score in [0, 1]."""
    return (
        e.stored_ms >= 0
        and e.joined_ms >= 0
        and (e.model is not None or e.positive is not None)
        and (not e.joined or (e.model is not None and e.positive is not None))
        and math.isfinite(e.score)
        and 0.0 <= e.score <= 1.0
    )


def to_local(e: Entry, model_number: int) -> bytes:
    """The entry on disk, its model by number."""
    stored, model, _, score, positive, joined = e
    flags = (_PREDICTION if model is not None else 0) | (
        0 if positive is None else _OUTCOME | _POSITIVE if positive else _OUTCOME
    )
    return _LOCAL.pack(flags, stored, joined, score, model_number)


def from_local(raw: bytes, models: dict[int, tuple[str, str]]) -> Entry:
    """An entry from disk; ``models`` gives each number's ``(name/version, sha256)``."""
    flags, stored, joined, score, number = _LOCAL.unpack(raw)
    model, sha = models[number] if flags & _PREDICTION else (None, "")
    positive = bool(flags & _POSITIVE) if flags & _OUTCOME else None
    return Entry(stored, model, sha, score, positive, joined)


def to_wire(e: Entry) -> bytes:
    """The body of a changelog record (before it is signed)."""
    stored, model, sha256, score, positive, joined = e
    flags = 0 if positive is None else _OUTCOME | _POSITIVE if positive else _OUTCOME
    if model is None:
        return _WIRE.pack(flags, stored, joined, score)
    return _WIRE.pack(flags | _PREDICTION, stored, joined, score) + f"{model} {sha256}".encode()


def from_wire(body: bytes) -> Entry | None:
    """The entry a verified changelog body holds; None when it is malformed or incoherent."""
    if not _WIRE.size <= len(body) <= _WIRE.size + _MAX_MODEL:
        return None
    flags, stored, joined, score = _WIRE.unpack_from(body)
    text = body[_WIRE.size :].decode(errors="replace")
    name, _, sha = text.partition(" ")
    has_model = bool(flags & _PREDICTION)
    if flags >= 8 or has_model != bool(text) or (has_model and not (name and sha)):
        return None
    positive = bool(flags & _POSITIVE) if flags & _OUTCOME else None
    entry = Entry(stored, name if has_model else None, sha, score, positive, joined)
    return entry if coherent(entry) else None
