"""Recorded reason codes: the predictions of sampled provenance records, and their reasons checked.

Provenance does not carry reasons; the prediction does. The prediction of a provenance record is on
the predictions topic, in the partition numbered as its input's, written after its ``scored_at``:
each partition is read from the earliest such time of the records sampled (less a minute, for a
broker's clock) to its end as it was then. A prediction is matched by ``event_id`` and ``scored_at``,
and every record that matches is checked (a copy written later with other reasons is found). A
shadow answer goes to the challenger topic with no reasons, so it is not looked for.

Recorded reasons are checked against the contributions computed again: each name a card feature,
each number bit-exactly the feature's contribution, in order of magnitude, the K largest
(no feature left out has a larger one), K as ``STREAMSCORE_REASONS`` says.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from stream.audit.formats import Formats
from stream.audit.lookup import Reader
from stream.contracts import Prediction, Provenance

__all__ = ["Key", "difference", "key_of", "recorded_predictions"]

Key = tuple[str, str]
"""A prediction's ``event_id`` and ``scored_at`` (ISO 8601)."""
_SLACK_MS = 60_000


def key_of(record: Provenance | Prediction) -> Key:
    return record.event_id, record.scored_at.isoformat()


def recorded_predictions(
    reader: Reader, topic: str, records: Iterable[Provenance], formats: Formats
) -> dict[Key, list[Prediction]]:
    """The predictions of each provenance record that has some on ``topic`` (shadow answers left out)."""
    wanted: dict[int, set[Key]] = defaultdict(set)
    since: dict[int, int] = {}
    for p in records:
        if p.role == "shadow":
            continue
        partition, ms = p.input.partition, int(p.scored_at.timestamp() * 1000) - _SLACK_MS
        wanted[partition].add(key_of(p))
        since[partition] = min(since.get(partition, ms), ms)
    found: dict[Key, list[Prediction]] = defaultdict(list)
    held = set(reader.partitions(topic))
    for partition, keys in wanted.items():
        if partition not in held:
            continue
        first = reader.offset_at(topic, partition, max(since[partition], 0))
        _, end = reader.watermarks(topic, partition)
        for m in reader.scan(topic, {partition: (first, end)}):
            prediction = formats.prediction(m.value())
            if prediction is not None and (key := key_of(prediction)) in keys:
                found[key].append(prediction)
    return dict(found)


def _bits(value: float) -> str:
    return value.hex() if isinstance(value, float) else repr(value)


def difference(recorded: dict[str, float], computed: dict[str, float], k: int) -> str | None:
    """Why ``recorded`` reasons are not the ``k`` largest of the ``computed`` contributions, bit-exactly;
    None when they are."""
    for name, value in recorded.items():
        if name not in computed:
            return f"reasons.{name}: the prediction names a feature the model does not read"
        if _bits(float(value)) != _bits(computed[name]):
            return f"reasons.{name}: prediction {value!r}, re-scored {computed[name]!r}"
    if len(recorded) != min(k, len(computed)):
        wanted = min(k, len(computed))
        return f"reasons: the prediction gives {len(recorded)}, STREAMSCORE_REASONS={k} asks for {wanted}"
    magnitudes = [abs(v) for v in recorded.values()]
    if magnitudes != sorted(magnitudes, reverse=True):
        return "reasons: not in order of magnitude, largest first"
    floor = min(magnitudes, default=math.inf)
    for name, value in computed.items():
        if name not in recorded and abs(value) > floor:
            return f"reasons: {name} (contribution {value!r}) is larger than a reason the prediction gives"
    return None
