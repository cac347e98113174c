"""Output records: a prediction and its provenance for each scored event, a dead letter for each refused one.

The contracts are the pydantic models of :mod:`stream.contracts` (``Prediction``, ``Provenance``,
``DeadLetter``); the hot path writes the same JSON directly with orjson, and tests check it against
those models and pin its exact bytes. What is constant is serialised once: the model and scorer
parts when a model is bound (:class:`RecordBuilder`), the batch's timestamps once per batch
(``orjson.Fragment``). Hashes come from a BLAKE2b keyed once and copied per use. The prediction's
and the provenance's dicts are serialised as JSON unless the builder is given other serializers
(the wire formats of :mod:`stream.formats`).

A prediction goes to the input's partition number with the input's key, so the order per key
holds; provenance is keyed by ``event_id`` with no partition, so the producer's partitioner places
it (co-partitioned with the outcomes); a dead letter carries the input's key, value and headers
unchanged, with Kafka Connect's headers saying why. Predictions and provenance carry CloudEvents
headers and the input's W3C trace context (:mod:`stream.scoring.headers`): the constant ones built
once per builder, the time once per batch, the id per event; nothing more for an input without
headers.
"""

# RecordBuilder.scored is over 60 lines on purpose: it is the hot path's per-event loop, with every
# attribute it reads held in a local and no call per event that it can avoid (a helper per record
# would cost a Python call per event twice over).

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from stream.contracts import Event, ModelCard, Role
from stream.errors import PoisonEvent, ScoreError
from stream.messages import MAX_RECORD_BYTES, TIMESTAMP_NOT_AVAILABLE, Inbound, Record
from stream.scoring.dead_letters import fit_dead_letter
from stream.scoring.headers import CloudEventHeaders, trace_context

_dumps = orjson.dumps
FLOAT64_MAX = 1.7976931348623157e308
_Fragment = orjson.Fragment


_record = partial(tuple.__new__, Record)
"""``_record(fields)`` is ``Record(*fields)`` without NamedTuple's Python-level ``__new__``."""
Serialize = Callable[[dict[str, Any]], bytes]
"""A record's dict (``orjson.Fragment`` where a part is serialised once) to its value's bytes."""
JSON_VALUES: tuple[Serialize, Serialize] = (_dumps, _dumps)
"""Predictions and provenance in JSON (other formats: :mod:`stream.formats`)."""
TAKES_DATETIMES = "takes_datetimes"
"""A serializer with this attribute set is given the timestamps as datetimes, not JSON fragments."""


@dataclass(frozen=True, slots=True)
class Topics:
    predictions: str
    provenance: str
    dead_letters: str


class RecordBuilder:
    """Builds the records of one model's batches: bound when the model is, used for every batch."""

    __slots__ = (
        "_bounds", "_ce_predictions", "_ce_provenance", "_fragments", "_hasher", "_labels", "_model",
        "_model_name", "_model_version", "_personal", "_personal_strings", "_role", "_scorer", "_serialize",
        "_threshold", "max_record_bytes", "topics",
    )  # fmt: skip

    def __init__(
        self,
        topics: Topics,
        *,
        model: dict[str, str],
        threshold: float,
        labels: tuple[str, str],
        personal: Sequence[tuple[str, int]],
        pii_key: bytes,
        scorer: dict[str, str | None],
        role: Role = "champion",
        serialize: tuple[Serialize, Serialize] = JSON_VALUES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        personal_strings: Sequence[tuple[str, int]] = (),
        values: bool = False,
    ) -> None:
        """``model``: name, version, sha256; ``labels``: negative, positive; ``personal``: (name, column)
        of numbers, ``personal_strings``: (name, column of the texts); ``values``: a regressor's scores
        (any finite number, no label) rather than probabilities.

        ``role`` is written on every prediction and provenance record the builder makes;
        ``serialize`` writes the prediction's and the provenance's values (default: JSON);
        ``max_record_bytes`` bounds a dead letter (a larger input is cut to fit, saying so).
        """
        self.topics = topics
        self.max_record_bytes = max_record_bytes
        self._role = role
        self._serialize = serialize
        self._fragments = not all(getattr(s, TAKES_DATETIMES, False) for s in serialize)  # as fragments
        json = serialize is JSON_VALUES  # a registered format's bytes are not plain JSON: no content-type
        self._ce_predictions = CloudEventHeaders(topics.predictions, "prediction", json).constant
        self._ce_provenance = CloudEventHeaders(topics.provenance, "provenance", json).constant
        self._model_name, self._model_version = model["name"], model["version"]
        self._model = _Fragment(_dumps(model))
        self._scorer = _Fragment(_dumps(scorer))
        self._threshold, self._labels = threshold, labels
        self._hasher = hashlib.blake2b(digest_size=16, key=pii_key)
        self._bounds = (-FLOAT64_MAX, FLOAT64_MAX) if values else (0.0, 1.0)
        self._personal = [(n, column * 4, self._prefixed(n)) for n, column in personal]  # float32 offsets
        self._personal_strings = [(n, column, self._prefixed(n)) for n, column in personal_strings]

    def _prefixed(self, name: str) -> Any:
        prefixed = self._hasher.copy()
        prefixed.update(name.encode() + b"=")
        return prefixed

    @classmethod
    def for_card(
        cls,
        topics: Topics,
        card: ModelCard,
        *,
        pii_key: bytes,
        scorer: dict[str, str | None],
        role: Role = "champion",
        serialize: tuple[Serialize, Serialize] = JSON_VALUES,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> RecordBuilder:
        """The builder of the records of the model ``card`` describes."""
        strings = [f for f in card.features if f.type == "string"]
        return cls(
            topics,
            model={"name": card.name, "version": card.version, "sha256": card.sha256},
            threshold=card.output.threshold,
            labels=(card.output.negative_label, card.output.positive_label),
            personal=[(f.name, i) for i, f in enumerate(card.features) if f.personal and f.type != "string"],
            personal_strings=[(f.name, i) for i, f in enumerate(strings) if f.personal],
            values=card.output.task == "regression",
            pii_key=pii_key,
            scorer=scorer,
            role=role,
            serialize=serialize,
            max_record_bytes=max_record_bytes,
        )

    def scored(
        self,
        msgs: Sequence[Inbound],
        events: Sequence[Event],
        rows: np.ndarray,
        scores: Sequence[float],
        received_at: dt.datetime,
        scored_at: dt.datetime,
        emitted_at: dt.datetime,
        *,
        texts: Sequence[Sequence[str]] | None = None,
        decided: Sequence[str | None] | None = None,
        probabilities: Sequence[dict[str, float]] | None = None,
        reasons: Sequence[dict[str, float] | None] | None = None,
    ) -> tuple[list[Record], int]:
        """The records of scored events (float32 ``rows``, their ``scores``), and how many were scored.

        ``texts``: each event's string features (hashed after its row); ``decided``: a multiclass
        model's labels with each event's ``probabilities`` by label (a binary classifier's label
        comes from its threshold, a regressor has none); ``reasons``: each event's reason codes (feature
        name -> contribution). Each event gets a prediction and its
        provenance, or a ``score`` dead letter when its score is not a probability (a regressor's:
        not finite; NaN included). Both carry CloudEvents headers and the input's trace context
        (:mod:`stream.scoring.headers`).
        """
        pred_topic, prov_topic = self.topics.predictions, self.topics.provenance
        threshold, labels, (low, high) = self._threshold, self._labels, self._bounds
        if decided is None:  # a binary classifier's label comes from its threshold, a regressor has none
            decided = repeat(None) if low == 0.0 else repeat("")
        strings = repeat(None) if texts is None else texts
        optional = probabilities is not None or reasons is not None
        shares = _extras(probabilities, reasons) if optional else repeat(None)
        personal_strings = self._personal_strings
        name, version, model, scorer = self._model_name, self._model_version, self._model, self._scorer
        role, (dump_prediction, dump_provenance) = self._role, self._serialize
        hasher, personal = self._hasher, self._personal
        fragments = self._fragments
        received, scored, emitted = (
            (_Fragment(_dumps(t)) for t in (received_at, scored_at, emitted_at))
            if fragments
            else (received_at, scored_at, emitted_at)
        )
        ce_time = ("ce_time", scored_at.isoformat().encode())
        ce_predictions, ce_provenance = self._ce_predictions, self._ce_provenance
        data, width = rows.tobytes(), rows.shape[1] * 4
        records: list[Record] = []
        append = records.append
        n = start = 0
        lanes = zip(msgs, events, scores, decided, strings, shares, strict=False)  # repeat(None) is endless
        for msg, event, score, label, values, share in lanes:
            row = data[start : start + width]
            start += width
            if not low <= score <= high:
                what = "a probability" if low == 0.0 else "a finite value"
                append(
                    self.dead_letter(msg, ScoreError(f"model output {score!r} is not {what}"), event.event_id)
                )
                continue
            event_id, partition = event.event_id, msg.partition()
            key = event_id.encode()
            tail = [("ce_id", key), ce_time]
            inbound_headers = msg.headers()
            if inbound_headers:
                tail += trace_context(inbound_headers)
            occurred_at = (  # serialised once: its tzinfo is slow to read
                _Fragment(_dumps(event.occurred_at)) if fragments else event.occurred_at
            )
            prediction = {
                "event_id": event_id,
                "entity_id": event.entity_id,
                "score": score,
                "label": labels[score >= threshold] if label is None else label,
                "threshold": threshold,
                "model_name": name,
                "model_version": version,
                "role": role,
                "occurred_at": occurred_at,
                "scored_at": scored,
            }
            if share is not None:  # the optional fields: probabilities, reasons
                prediction.update(share)
            value = dump_prediction(prediction)
            append(_record((pred_topic, msg.key(), value, partition, partition, ce_predictions + tail)))
            feature_hash = hasher.copy()
            feature_hash.update(row)
            hashes = {}
            for feature, offset, prefixed in personal:
                h = prefixed.copy()
                h.update(row[offset : offset + 4])
                hashes[feature] = h.hexdigest()
            if values is not None:
                encoded = [v.encode() for v in values]
                feature_hash.update(b"".join(v + b"\0" for v in encoded))
                for feature, column, prefixed in personal_strings:
                    h = prefixed.copy()
                    h.update(encoded[column])
                    hashes[feature] = h.hexdigest()
            kind, ms = msg.timestamp()
            provenance = {
                "event_id": event_id,
                "score": score,
                "input": {
                    "topic": msg.topic(),
                    "partition": partition,
                    "offset": msg.offset(),
                    "timestamp_ms": None if kind == TIMESTAMP_NOT_AVAILABLE else ms,
                },
                "model": model,
                "role": role,
                "feature_hash": feature_hash.hexdigest(),
                "personal": hashes,
                "scorer": scorer,
                "occurred_at": occurred_at,
                "received_at": received,
                "scored_at": scored,
                "emitted_at": emitted,
            }
            value = dump_provenance(provenance)
            append(_record((prov_topic, key, value, None, partition, ce_provenance + tail)))
            n += 1
        return records, n

    def dead_letter(self, msg: Inbound, exc: PoisonEvent, event_id: str | None) -> Record:
        """The input unchanged (key, value, headers, partition), to the dead-letter topic, saying why;
        cut to fit :attr:`max_record_bytes` when the input is larger (:mod:`stream.scoring.dead_letters`)."""
        partition = msg.partition()
        key, value, headers = fit_dead_letter(msg, exc, event_id, self.max_record_bytes)
        return Record(self.topics.dead_letters, key, value, partition, partition, headers)


def _extras(
    probabilities: Sequence[dict[str, float]] | None, reasons: Sequence[dict[str, float] | None] | None
) -> list[dict[str, Any]]:
    """Each event's optional prediction fields, in contract order: probabilities, reasons (none for an
    event whose reasons could not be computed)."""
    if reasons is None:
        return [{"probabilities": p} for p in probabilities or ()]
    given = [{} if r is None else {"reasons": r} for r in reasons]
    if probabilities is None:
        return given
    return [{"probabilities": p, **r} for p, r in zip(probabilities, given, strict=True)]
