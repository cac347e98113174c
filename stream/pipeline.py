"""The hot path: a batch of input messages in; predictions, provenance and dead letters out.

Pure and broker-free, so it is unit-tested and benchmarked on its own; ``stream.app`` feeds it from
Kafka and sends what it returns. Per batch, top to bottom:

1. decode and validate each message (contract, then the card's features); a poison message
   becomes a dead letter carrying the original bytes and the reason;
2. score every valid row in one onnxruntime run (row by row only if that run fails);
3. build one prediction and one provenance record per scored event, or a dead letter where the
   model's output is not a probability.

Every input yields exactly one prediction (with its provenance) or exactly one dead letter.
Outputs keep the input's key and partition, so ordering per key holds downstream. The model can be
replaced between batches (:meth:`Pipeline.swap`, used by ``stream.reload``); a batch is scored
with one model from start to end.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.codec import MAX_FEATURES, MAX_STRING_LENGTH, FeatureReader, decode, dumps, keyed_hash
from stream.contracts import Event
from stream.errors import ModelError, PoisonEvent, ScoreError
from stream.messages import Headers, Inbound, Record, timestamp_ms
from stream.model import LoadedModel


@dataclass(frozen=True, slots=True)
class Topics:
    predictions: str
    provenance: str
    dead_letters: str


@dataclass(slots=True)
class BatchResult:
    """The records to send for one batch, and what happened to its events."""

    records: list[Record] = field(default_factory=list)
    scored: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)  # stage -> count
    latencies: list[float] = field(default_factory=list)  # event time -> emit, seconds
    features: np.ndarray | None = None  # rows of the scored events, card order (for drift)
    scores: np.ndarray | None = None  # their scores
    partitions: np.ndarray | None = None  # their input partitions
    offsets: np.ndarray | None = None  # their input offsets
    times: np.ndarray | None = None  # their occurred_at, epoch seconds


@dataclass(frozen=True, slots=True)
class _Scoring:
    """Everything the hot path takes from one model; replaced whole by :meth:`Pipeline.swap`."""

    model: LoadedModel
    reader: FeatureReader
    personal: list[tuple[str, int, bytes]]  # (name, column, hash prefix) of each personal feature
    threshold: float
    labels: tuple[str, str]
    ref: dict[str, str]


class Pipeline:
    """Scores batches of messages with one model at a time."""

    def __init__(
        self,
        model: LoadedModel,
        topics: Topics,
        *,
        pii_key: bytes,
        scorer: dict[str, str | None],
        max_message_bytes: int,
        max_features: int = MAX_FEATURES,
        max_string_length: int = MAX_STRING_LENGTH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topics = topics
        self._clock = clock  # epoch seconds: every timestamp the pipeline writes
        self._key = pii_key
        self._max_bytes = max_message_bytes
        self._max_features, self._max_string = max_features, max_string_length
        self._scorer = scorer
        self.scorer_id = str(scorer.get("worker_id"))
        self._scoring = self._bind(model)

    @property
    def model(self) -> LoadedModel:
        return self._scoring.model

    def swap(self, model: LoadedModel) -> None:
        """Serve ``model`` from the next batch on; a batch in progress finishes with the one it began with.

        One attribute assignment, which :meth:`process` reads once per batch, so never mid-batch.
        Raises :class:`ModelError` (and keeps the current model) if ``model`` breaks the input bounds.
        """
        self._scoring = self._bind(model)

    def _bind(self, model: LoadedModel) -> _Scoring:
        card = model.card
        if len(card.features) > self._max_features:
            raise ModelError(
                f"{model.path.parent} lists {len(card.features)} features, more than the limit of "
                f"{self._max_features}: raise STREAMSCORE_MAX_FEATURES"
            )
        return _Scoring(
            model=model,
            reader=FeatureReader(card.features, self._max_features, self._max_string),
            personal=[(f.name, i, f.name.encode() + b"=") for i, f in enumerate(card.features) if f.personal],
            threshold=card.output.threshold,
            labels=(card.output.negative_label, card.output.positive_label),
            ref={"name": card.name, "version": card.version, "sha256": card.sha256},
        )

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        received_at = self._now()
        result = BatchResult()
        scoring = self._scoring  # the model of this whole batch, whatever swap() does meanwhile
        row_of = scoring.reader.row

        # 1. decode and validate
        valid: list[tuple[Inbound, Event]] = []
        rows: list[list[float]] = []
        for msg in batch:
            event = None
            try:
                event = decode(msg.value(), self._max_bytes)
                rows.append(row_of(event.features))
                valid.append((msg, event))
            except PoisonEvent as exc:
                self._dead_letter(result, msg, exc, event)
        if not valid:
            return result

        # 2. score
        x = np.array(rows, dtype=np.float32)
        scores = self._score(scoring.model, x)

        # 3. records
        scored_at = self._now()
        predictions, provenance = self.topics.predictions, self.topics.provenance
        threshold, labels, model, scorer = scoring.threshold, scoring.labels, scoring.ref, self._scorer
        for i, (msg, event) in enumerate(valid):
            score = float(scores[i])
            if not 0.0 <= score <= 1.0:
                self._dead_letter(
                    result, msg, ScoreError(f"model output {score!r} is not a probability"), event
                )
                continue
            occurred_at = event.occurred_at
            result.records.append(
                Record(
                    predictions,
                    msg.key(),
                    dumps(
                        {
                            "event_id": event.event_id,
                            "entity_id": event.entity_id,
                            "score": score,
                            "label": labels[score >= threshold],
                            "threshold": threshold,
                            "model_name": model["name"],
                            "model_version": model["version"],
                            "occurred_at": occurred_at,
                            "scored_at": scored_at,
                        }
                    ),
                    msg.partition(),
                    msg.partition(),
                )
            )
            row = x[i]
            result.records.append(
                Record(
                    provenance,
                    event.event_id.encode(),
                    dumps(
                        {
                            "event_id": event.event_id,
                            "score": score,
                            "input": {
                                "topic": msg.topic(),
                                "partition": msg.partition(),
                                "offset": msg.offset(),
                                "timestamp_ms": timestamp_ms(msg),
                            },
                            "model": model,
                            "feature_hash": keyed_hash(self._key, row.tobytes()),
                            "personal": {
                                name: keyed_hash(self._key, prefix + row[j].tobytes())
                                for name, j, prefix in scoring.personal
                            },
                            "scorer": scorer,
                            "occurred_at": occurred_at,
                            "received_at": received_at,
                            "scored_at": scored_at,
                            "emitted_at": self._now(),
                        }
                    ),
                    None,
                    msg.partition(),
                )
            )
            result.scored += 1
        emitted = self._clock()
        times = np.array([event.occurred_at.timestamp() for _, event in valid])
        result.latencies = (emitted - times).tolist()
        ok = (scores >= 0.0) & (scores <= 1.0)
        result.features, result.scores, result.times = x[ok], scores[ok], times[ok]
        result.partitions = np.array([msg.partition() for msg, _ in valid])[ok]
        result.offsets = np.array([msg.offset() for msg, _ in valid])[ok]
        return result

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    @staticmethod
    def _score(model: LoadedModel, x: np.ndarray) -> np.ndarray:
        """One run for the batch; if it fails, row by row so that only failing rows are lost to NaN."""
        try:
            return model.predict_proba(x)
        except Exception:  # onnxruntime raises its own exception types
            out = np.full(len(x), np.nan, dtype=np.float32)
            for i in range(len(x)):
                try:
                    out[i] = model.predict_proba(x[i : i + 1])[0]
                except Exception:
                    continue
            return out

    def _dead_letter(self, result: BatchResult, msg: Inbound, exc: PoisonEvent, event: Event | None) -> None:
        headers = dead_letter_headers(msg, exc, event.event_id if event is not None else None)
        result.records.append(
            Record(
                self.topics.dead_letters, msg.key(), msg.value(), msg.partition(), msg.partition(), headers
            )
        )
        result.dead_letters[exc.stage] = result.dead_letters.get(exc.stage, 0) + 1


def dead_letter_headers(msg: Inbound, exc: PoisonEvent, event_id: str | None) -> Headers:
    """The original headers, then Kafka Connect's dead-letter headers describing the failure."""
    headers: Headers = list(msg.headers() or ())
    headers += [
        ("__connect.errors.topic", (msg.topic() or "").encode()),
        ("__connect.errors.partition", str(msg.partition()).encode()),
        ("__connect.errors.offset", str(msg.offset()).encode()),
    ]
    ms = timestamp_ms(msg)
    if ms is not None:
        headers.append(("__connect.errors.timestamp", str(ms).encode()))
    headers += [
        ("__connect.errors.exception.class.name", f"stream.errors.{type(exc).__name__}".encode()),
        ("__connect.errors.exception.message", str(exc)[:1000].encode()),
        ("__connect.errors.stage", exc.stage.encode()),
    ]
    if event_id is not None:
        headers.append(("streamscore.event_id", event_id.encode()))
    return headers
