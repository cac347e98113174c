"""A challenger beside the champion: every event of a batch scored by both, one answer live.

Bound once per champion and challenger (:class:`Challenge`), so the hot path chooses nothing per
message: without a challenger the pipeline never comes here. Each model scores the batch in one
onnxruntime run.

- **shadow** (``STREAMSCORE_CANARY_PERCENT=0``): the champion's answers are live; the challenger's
  go to ``STREAMSCORE_CHALLENGER_TOPIC`` with role ``shadow``, never to the predictions topic.
- **canary**: a stable hash of each message's key (the ``event_id`` when there is no key) puts a
  key in the canary share or not, the same on every worker and at every start, so one entity
  always gets the same model. For those keys the challenger answers live (role ``canary``) and
  the champion's answer goes to the challenger topic (role ``shadow``); for the others, the other
  way round.

Provenance of both answers goes to the provenance topic (keyed by ``event_id``), each with its
role, so the outcome worker can compare the two models on the same events. A shadow score that is
not a probability is dropped (counted), never dead-lettered: the event had its live answer.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from stream.contracts import Event, Role
from stream.errors import ModelError
from stream.messages import MAX_RECORD_BYTES, Inbound, Record
from stream.scoring.features import FeatureReader
from stream.scoring.model import LoadedModel, predict_safely
from stream.scoring.records import JSON_VALUES, RecordBuilder, Serialize, Topics

__all__ = ["Challenge", "Side", "canary_mask", "check_pair", "columns"]

_BUCKETS = 10_000
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def canary_mask(keys: Sequence[bytes], percent: float) -> np.ndarray:
    """True for the keys in the canary share: CRC-32 of each key, mixed and cut into 10,000 buckets."""
    h = np.fromiter((zlib.crc32(k) for k in keys), dtype=np.uint64, count=len(keys))
    mixed = (h * _GOLDEN) >> np.uint64(32)  # multiplicative hashing spreads CRC-32's linear bits
    return (mixed % np.uint64(_BUCKETS)) < np.uint64(round(percent * _BUCKETS / 100))


def columns(champion: LoadedModel, challenger: LoadedModel) -> list[int] | None:
    """Columns of the champion's rows the challenger reads, in its order (None: the same rows).

    :class:`ModelError` when the challenger cannot take the champion's rows (it reads a feature
    the champion does not, or either reads strings): then it reads its own features from the events.
    """
    have, wants = champion.feature_names, challenger.feature_names
    missing = [f for f in wants if f not in have]
    if missing or champion.string_names or challenger.string_names:
        raise ModelError(f"challenger {challenger.card.name} reads features of its own: {missing}")
    cols = [have.index(f) for f in wants]
    return None if cols == list(range(len(have))) else cols


def check_pair(champion: LoadedModel, challenger: LoadedModel) -> None:
    """:class:`ModelError` unless ``challenger`` answers the same question as ``champion``."""
    tasks = champion.card.output.task, challenger.card.output.task
    if tasks[0] != tasks[1] or "multiclass" in tasks:
        raise ModelError(
            f"challenger {challenger.card.name}/{challenger.card.version} is a {tasks[1]} model beside a "
            f"{tasks[0]} champion: a challenger answers the champion's question (binary or regression)"
        )


class Challenge:
    """The champion's and the challenger's record builders for one pair of models."""

    def __init__(
        self,
        champion: LoadedModel,
        challenger: LoadedModel,
        topics: Topics,
        shadow_topic: str,
        canary_percent: float,
        *,
        pii_key: bytes,
        scorer: dict[str, str | None],
        serialize: tuple[Serialize, Serialize] = JSON_VALUES,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        check_pair(champion, challenger)
        self.model, self.percent = challenger, canary_percent
        try:
            self.cols: list[int] | None = columns(champion, challenger)
            self.reader: FeatureReader | None = None
        except ModelError:
            self.cols, self.reader = None, FeatureReader(challenger.card.features, wide=challenger.feeds.wide)
        self.bounds = (-np.inf, np.inf) if challenger.card.output.task == "regression" else (0.0, 1.0)
        shadow_topics = Topics(shadow_topic, topics.provenance, topics.dead_letters)

        def builder(model: LoadedModel, where: Topics, role: Role) -> RecordBuilder:
            return RecordBuilder.for_card(
                where, model.card, pii_key=pii_key, scorer=scorer, role=role, serialize=serialize,
                max_record_bytes=max_record_bytes,
            )  # fmt: skip

        self.shadow = builder(challenger, shadow_topics, "shadow")
        self.canary = builder(challenger, topics, "canary")
        self.champion_shadow = builder(champion, shadow_topics, "shadow")
        self.dropped = 0  # shadow scores that were not probabilities
        self.missed = 0  # events that lacked a feature only the challenger reads

    def rows(
        self, x: np.ndarray, events: Sequence[Event]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The challenger's rows and texts for a batch, and where it cannot read an event (its feature
        missing or refused: the champion's answer stands, the miss is counted)."""
        if self.reader is None:
            return (x if self.cols is None else x[:, self.cols]), None, np.zeros(len(x), dtype=bool)
        rows = self.reader.rows([event.features for event in events])
        missed = np.array([error is not None for error in rows.errors], dtype=bool)
        self.missed += int(missed.sum())
        return rows.x, rows.texts, missed

    @property
    def mode(self) -> str:
        return "canary" if self.percent > 0 else "shadow"

    def answer(
        self,
        live: RecordBuilder,
        msgs: Sequence[Inbound],
        events: Sequence[Event],
        champion: Side,
        x: np.ndarray,
        times: tuple[dt.datetime, dt.datetime, dt.datetime],
    ) -> tuple[list[Record], int, np.ndarray, int, int]:
        """Score the batch the champion scored (``x``: its rows) with the challenger, reading its own
        features from the events: records, live ones scored, live scores, shadow ones, misses."""
        cx, ctexts, missed = self.rows(x, events)
        other = predict_safely(self.model, cx, ctexts).scores
        other[missed] = np.nan
        challenger = Side(cx.astype(np.float32, copy=False), ctexts, other)
        built, n, scores, shadowed = self.records(live, msgs, events, champion, challenger, missed, times)
        return built, n, scores, shadowed, int(missed.sum())

    def records(
        self,
        live: RecordBuilder,
        msgs: Sequence[Inbound],
        events: Sequence[Event],
        champion: Side,
        challenger: Side,
        missed: np.ndarray,
        times: tuple[dt.datetime, dt.datetime, dt.datetime],
    ) -> tuple[list[Record], int, np.ndarray, int]:
        """Records of a batch both models scored: records, live ones scored, live scores, shadow ones.

        ``missed``: the events the challenger could not read; the champion answers them live."""
        scores, other = champion.scores, challenger.scores
        if self.percent <= 0:
            built, n = _build(live, _take(None, msgs, events, champion), times)
            shadow = self._shadow(self.shadow, ~missed, msgs, events, challenger, times)
            return built + shadow, n, scores, len(shadow) // 2
        keys = [m.key() or e.event_id.encode() for m, e in zip(msgs, events, strict=True)]
        mask = canary_mask(keys, self.percent) & ~missed
        rest = ~mask
        built, n = _build(live, _take(rest, msgs, events, champion), times)
        canary, m = _build(self.canary, _take(mask, msgs, events, challenger), times)
        shadow = self._shadow(self.shadow, rest & ~missed, msgs, events, challenger, times)
        shadow += self._shadow(self.champion_shadow, mask, msgs, events, champion, times)
        return built + canary + shadow, n + m, np.where(mask, other, scores), len(shadow) // 2

    def _shadow(
        self,
        builder: RecordBuilder,
        mask: np.ndarray,
        msgs: Sequence[Inbound],
        events: Sequence[Event],
        side: Side,
        times: tuple[dt.datetime, dt.datetime, dt.datetime],
    ) -> list[Record]:
        """Shadow records of the rows in ``mask`` whose score is valid (the others are counted)."""
        low, high = self.bounds
        ok = mask & (side.scores >= low) & (side.scores <= high)  # NaN is neither
        self.dropped += int((mask & ~ok).sum())
        return _build(builder, _take(ok, msgs, events, side), times)[0]


class Side(NamedTuple):
    """One model's view of a batch: float32 rows, string values, scores."""

    x: np.ndarray
    texts: np.ndarray | None
    scores: np.ndarray


def _take(
    mask: np.ndarray | None, msgs: Sequence[Inbound], events: Sequence[Event], side: Side
) -> tuple[Sequence[Inbound], Sequence[Event], np.ndarray, list[float], np.ndarray | None]:
    """The rows of a batch where ``mask`` is True (the batch itself when it is None or all True)."""
    if mask is None or mask.all():
        return msgs, events, side.x, side.scores.tolist(), side.texts
    where = np.flatnonzero(mask).tolist()
    texts = None if side.texts is None else side.texts[mask]
    return (
        [msgs[i] for i in where],
        [events[i] for i in where],
        side.x[mask],
        side.scores[mask].tolist(),
        texts,
    )


def _build(
    builder: RecordBuilder,
    taken: tuple[Sequence[Inbound], Sequence[Event], np.ndarray, list[float], np.ndarray | None],
    times: tuple[dt.datetime, dt.datetime, dt.datetime],
) -> tuple[list[Record], int]:
    msgs, events, x, scores, texts = taken
    return builder.scored(msgs, events, x, scores, *times, texts=texts)
