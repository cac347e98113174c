"""The hot path: a batch of input messages in; predictions, provenance and dead letters out.

Pure and broker-free, so it is unit-tested and benchmarked on its own; a Kafka loop feeds it
confluent-kafka messages as ``consume()`` returns them (:class:`~stream.messages.Inbound`) and sends
the records (:class:`~stream.messages.Record`) it returns. Per batch, top to bottom:

1. decode and validate the messages (contract, in one pydantic call for the batch, then the card's
   features); a poison message becomes a dead letter carrying the original bytes and the reason;
2. score every valid row in one onnxruntime run (row by row only if that run fails);
3. with reasons on, each row's K largest contributions (:mod:`stream.scoring.reasons`; not while
   a challenger scores beside the model); then one prediction and one provenance record per scored
   event, or a dead letter where the model's output is not a probability (:mod:`stream.scoring.records`).

Every input yields exactly one prediction (with its provenance) or exactly one dead letter.
Predictions and dead letters keep the input's key and partition, so ordering per key holds
downstream; provenance is keyed by ``event_id``. The model can be replaced between batches
(:meth:`Pipeline.swap`, used by ``stream.worker.reload``); a batch is scored with one model from
start to end, and the first batch of a new model says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.contracts import MAX_FEATURES, MAX_STRING_LENGTH, Event, Role
from stream.errors import FeatureError, ModelError, PoisonEvent
from stream.messages import MAX_KEY_BYTES, MAX_RECORD_BYTES, Inbound, Record
from stream.scoring.challenger import Challenge, Side, check_pair
from stream.scoring.codec import BatchDecoder, refuse_long_keys
from stream.scoring.features import FeatureReader
from stream.scoring.model import LoadedModel, by_label, predict_safely
from stream.scoring.reasons import Reasons, reasons_for
from stream.scoring.records import JSON_VALUES, RecordBuilder, Serialize, Topics

log = logging.getLogger("streamscore.worker")
Complete = Callable[[Sequence[Inbound], list[Event | PoisonEvent]], None]
"""Fills in place what an event's shape left out (its id, its time) from its record."""


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
    switched: LoadedModel | None = None  # the model served until this batch, when a new one starts here
    shadowed: int = 0  # shadow predictions (with their provenance), with a challenger
    ignored: Counter[str] = field(default_factory=Counter)  # fields no model read -> events carrying each
    missed: int = 0  # events the challenger could not read (a feature only it needs missing or refused)


@dataclass(frozen=True, slots=True)
class _Scoring:
    """Everything the hot path takes from one model; replaced whole by :meth:`Pipeline.swap`."""

    model: LoadedModel
    reader: FeatureReader
    records: RecordBuilder
    challenge: Challenge | None  # a challenger beside the model (shadow or canary)
    reasons: Reasons | None  # the model's reason codes, when they are on


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
        max_key_bytes: int = MAX_KEY_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        max_features: int = MAX_FEATURES,
        max_string_length: int = MAX_STRING_LENGTH,
        clock: Callable[[], float] = time.time,
        decoder: Callable[[Sequence[bytes | None]], list[Event | PoisonEvent]] | None = None,
        serialize: tuple[Serialize, Serialize] = JSON_VALUES,
        role: Role = "champion",
        challenger: LoadedModel | None = None,
        shadow_topic: str = "predictions.challenger",
        canary_percent: float = 0.0,
        strict_fields: bool = False,
        complete: Complete | None = None,
        extras: Callable[[Sequence[Event]], dict[str, int]] | None = None,
        reasons: int = 0,
    ) -> None:
        """``decoder``, ``serialize`` (prediction, provenance): a registered input and output format
        (default: JSON). ``challenger`` scores every event beside ``model``: in shadow to ``shadow_topic``,
        or live for ``canary_percent`` of the keys (:mod:`stream.scoring.challenger`). An event whose key
        is longer than ``max_key_bytes`` is a dead letter; none is larger than ``max_record_bytes``.
        ``strict_fields``: a field no model reads refuses its event (else it is ignored and counted);
        ``complete``: fills what the producer's event shape leaves out (id, time) from each record;
        ``extras``: the names of the fields of events no model reads, outside their features; ``reasons``:
        reason codes per prediction (a model that cannot be explained is refused, a :class:`ModelError`)."""
        self.topics = topics
        self.role = role  # written on every prediction and provenance record
        self.challenger, self._shadow_topic, self._canary = challenger, shadow_topic, canary_percent
        self._clock = clock  # epoch seconds: every timestamp the pipeline writes
        self._key = pii_key
        self._decode = decoder or BatchDecoder(max_message_bytes)
        self._max_key, self._max_record = max_key_bytes, max_record_bytes
        self._serialize = serialize
        self._max_features, self._max_string = max_features, max_string_length
        self._scorer = scorer
        self._strict, self._complete, self._extras, self._reasons = strict_fields, complete, extras, reasons
        self.scorer_id = str(scorer.get("worker_id"))
        self._scoring = self._offered = self._bind(model)

    @property
    def model(self) -> LoadedModel:
        """The model of the next batch."""
        return self._offered.model

    @property
    def challenge_mode(self) -> str:
        """``canary`` or ``shadow``: how a challenger scores beside the model."""
        return "canary" if self._canary > 0 else "shadow"

    @property
    def serving(self) -> LoadedModel:
        """The model of the last batch (until the next batch takes up one :meth:`swap` offered)."""
        return self._scoring.model

    def swap(self, model: LoadedModel, prepared: _Scoring | None = None) -> None:
        """Serve ``model`` from the next batch on; a batch in progress finishes with the one it began with.

        One attribute assignment, which :meth:`process` reads once per batch, so never mid-batch; the
        batch that starts with it says so (:attr:`BatchResult.switched`). Raises :class:`ModelError`
        (and keeps the current model) if ``model`` breaks the input bounds or, reasons on, cannot be
        explained. ``prepared``: what :meth:`prepare` made of ``model`` (off the event loop).
        """
        self._offered = prepared if prepared is not None and prepared.model is model else self._bind(model)

    def prepare(self, model: LoadedModel) -> _Scoring:
        """What serving ``model`` takes (with reasons on, its contributions: slow), for :meth:`swap`."""
        return self._bind(model)

    def swap_challenger(self, challenger: LoadedModel) -> None:
        """Score ``challenger`` beside the model from the next batch on; :class:`ModelError` (and the
        current challenger kept) if it does not answer the model's question."""
        check_pair(self._offered.model, challenger)
        self.challenger = challenger
        self._offered = self._bind(self._offered.model, self._offered.reasons)

    def _bind(self, model: LoadedModel, reasons: Reasons | None = None) -> _Scoring:
        card = model.card
        if len(card.features) > self._max_features:
            raise ModelError(
                f"{model.path.parent} lists {len(card.features)} features, more than the limit of "
                f"{self._max_features}: raise STREAMSCORE_MAX_FEATURES"
            )
        records = RecordBuilder.for_card(
            self.topics,
            card,
            pii_key=self._key,
            scorer=self._scorer,
            serialize=self._serialize,
            role=self.role,
            max_record_bytes=self._max_record,
        )
        reader = FeatureReader(
            card.features, self._max_features, self._max_string, wide=model.feeds.wide, strict=self._strict
        )
        explain = reasons if reasons is not None else reasons_for(model, self._reasons)  # may refuse it
        return _Scoring(model, reader, records, self._challenge(model), explain)

    def _challenge(self, model: LoadedModel) -> Challenge | None:
        """The challenger bound beside ``model``; None (the champion alone) when it cannot read its rows."""
        if self.challenger is None:
            return None
        try:
            return Challenge(
                model, self.challenger, self.topics, self._shadow_topic, self._canary,
                pii_key=self._key, scorer=self._scorer, serialize=self._serialize,
                max_record_bytes=self._max_record,
            )  # fmt: skip
        except ModelError as exc:
            log.error("the champion goes on alone: %s", exc)
            self.challenger = None
            return None

    def process(self, batch: Sequence[Inbound]) -> BatchResult:
        received_at = self._now()
        result = BatchResult()
        scoring = self._offered  # the model of this whole batch, whatever swap() does meanwhile
        if scoring is not self._scoring:
            result.switched, self._scoring = self._scoring.model, scoring
        records = scoring.records

        # 1. decode and validate: the contract, then the card's features
        decoded = self._decode([msg.value() for msg in batch])
        if self._complete is not None:
            self._complete(batch, decoded)
        max_key = self._max_key
        if any(len(key) > max_key for msg in batch if (key := msg.key()) is not None):
            refuse_long_keys(batch, decoded, max_key)
        valid = [event for event in decoded if not isinstance(event, PoisonEvent)]
        rows = scoring.reader.rows([event.features for event in valid])
        result.ignored = rows.ignored
        if self._extras is not None:
            result.ignored.update(self._extras(valid))
        if len(valid) == len(batch) and not any(rows.errors):  # no poison: every message is scored
            msgs, events, x, texts = batch, valid, rows.x, rows.texts
        else:
            msgs, events = self._refuse(result, records, batch, decoded, rows.errors)
            keep = [i for i, error in enumerate(rows.errors) if error is None]
            x, texts = rows.x[keep], None if rows.texts is None else rows.texts[keep]
        if not events:
            return result
        x32 = x if x.dtype == np.float32 else x.astype(np.float32)

        # 2. score: the model, and a challenger beside it when there is one (one run each)
        answer = predict_safely(scoring.model, x, texts)
        scores = answer.scores
        challenge = scoring.challenge
        times = (received_at, self._now(), self._now())  # received, scored, emitted

        # 3. records
        if challenge is None:
            shares = by_label(scoring.model, answer)
            reasons = None if scoring.reasons is None else scoring.reasons(x, texts)
            built, result.scored = records.scored(
                msgs, events, x32, scores.tolist(), *times,
                texts=texts, decided=answer.labels, probabilities=shares, reasons=reasons,
            )  # fmt: skip
        else:  # scores become the live ones: the champion's, or the challenger's for canary keys
            champion = Side(x32, texts, scores)
            built, result.scored, scores, result.shadowed, result.missed = challenge.answer(
                records, msgs, events, champion, x, times
            )
        result.records += built
        if result.scored < len(events):
            result.dead_letters["score"] = len(events) - result.scored
        self._observe(result, scoring.model, msgs, events, x32, scores)
        return result

    def _observe(
        self,
        result: BatchResult,
        model: LoadedModel,
        msgs: Sequence[Inbound],
        events: Sequence[Event],
        x32: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        """What drift, metrics and stats read of the scored events: latencies, rows, scores, origins."""
        emitted = self._clock()
        times = np.array([event.occurred_at.timestamp() for event in events])
        result.latencies = (emitted - times).tolist()
        regression = model.card.output.task == "regression"
        ok = np.isfinite(scores) if regression else (scores >= 0.0) & (scores <= 1.0)
        result.features, result.scores, result.times = x32[ok], scores[ok], times[ok]
        result.partitions = np.array([msg.partition() for msg in msgs])[ok]
        result.offsets = np.array([msg.offset() for msg in msgs])[ok]

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _refuse(
        self,
        result: BatchResult,
        records: RecordBuilder,
        batch: Sequence[Inbound],
        decoded: list[Event | PoisonEvent],
        errors: list[FeatureError | None],
    ) -> tuple[list[Inbound], list[Event]]:
        """Dead letters for the poison of a batch, in input order; the messages and events left."""
        refused, msgs, events = iter(errors), list[Inbound](), list[Event]()
        for msg, event in zip(batch, decoded, strict=True):
            if isinstance(event, PoisonEvent):
                self._dead_letter(result, records.dead_letter(msg, event, None), event)
            elif (error := next(refused)) is not None:
                self._dead_letter(result, records.dead_letter(msg, error, event.event_id), error)
            else:
                msgs.append(msg)
                events.append(event)
        return msgs, events

    @staticmethod
    def _dead_letter(result: BatchResult, record: Record, exc: PoisonEvent) -> None:
        result.records.append(record)
        result.dead_letters[exc.stage] = result.dead_letters.get(exc.stage, 0) + 1
