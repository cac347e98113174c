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

import numpy as np

from stream.contracts import Event, Role
from stream.errors import ModelError
from stream.messages import MAX_RECORD_BYTES, Inbound, Record
from stream.scoring.model import LoadedModel
from stream.scoring.records import JSON_VALUES, RecordBuilder, Serialize, Topics

__all__ = ["Challenge", "canary_mask", "columns"]

_BUCKETS = 10_000
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def canary_mask(keys: Sequence[bytes], percent: float) -> np.ndarray:
    """True for the keys in the canary share: CRC-32 of each key, mixed and cut into 10,000 buckets."""
    h = np.fromiter((zlib.crc32(k) for k in keys), dtype=np.uint64, count=len(keys))
    mixed = (h * _GOLDEN) >> np.uint64(32)  # multiplicative hashing spreads CRC-32's linear bits
    return (mixed % np.uint64(_BUCKETS)) < np.uint64(round(percent * _BUCKETS / 100))


def columns(champion: LoadedModel, challenger: LoadedModel) -> list[int] | None:
    """Columns of the champion's rows the challenger reads, in its order (None: the same rows)."""
    have = champion.feature_names
    wants = challenger.feature_names
    missing = [f for f in wants if f not in have]
    if missing:
        raise ModelError(
            f"challenger {challenger.card.name}/{challenger.card.version} needs features {missing} that the "
            f"champion's events do not carry: it must accept the champion's features"
        )
    cols = [have.index(f) for f in wants]
    return None if cols == list(range(len(have))) else cols


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
        self.model, self.percent = challenger, canary_percent
        self.cols = columns(champion, challenger)
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

    def rows(self, x: np.ndarray) -> np.ndarray:
        """The champion's feature rows in the challenger's column order."""
        return x if self.cols is None else x[:, self.cols]

    @property
    def mode(self) -> str:
        return "canary" if self.percent > 0 else "shadow"

    def records(
        self,
        live: RecordBuilder,
        msgs: Sequence[Inbound],
        events: Sequence[Event],
        x: np.ndarray,
        champion: np.ndarray,
        challenger: np.ndarray,
        times: tuple[dt.datetime, dt.datetime, dt.datetime],
    ) -> tuple[list[Record], int, np.ndarray, int]:
        """Records of a batch both models scored: records, live ones scored, live scores, shadow ones."""
        cx = self.rows(x)
        if self.percent <= 0:
            built, n = live.scored(msgs, events, x, champion.tolist(), *times)
            every = np.ones(len(challenger), dtype=bool)
            shadow = self._shadow(self.shadow, every, msgs, events, cx, challenger, times)
            return built + shadow, n, champion, len(shadow) // 2
        keys = [m.key() or e.event_id.encode() for m, e in zip(msgs, events, strict=True)]
        mask = canary_mask(keys, self.percent)
        rest = ~mask
        built, n = live.scored(*_take(rest, msgs, events, x, champion), *times)
        canary, m = self.canary.scored(*_take(mask, msgs, events, cx, challenger), *times)
        shadow = self._shadow(self.shadow, rest, msgs, events, cx, challenger, times)
        shadow += self._shadow(self.champion_shadow, mask, msgs, events, x, champion, times)
        return built + canary + shadow, n + m, np.where(mask, challenger, champion), len(shadow) // 2

    def _shadow(
        self,
        builder: RecordBuilder,
        mask: np.ndarray,
        msgs: Sequence[Inbound],
        events: Sequence[Event],
        x: np.ndarray,
        scores: np.ndarray,
        times: tuple[dt.datetime, dt.datetime, dt.datetime],
    ) -> list[Record]:
        """Shadow records of the rows in ``mask`` whose score is a probability (the others are counted)."""
        ok = mask & _valid(scores)
        self.dropped += int((mask & ~ok).sum())
        return builder.scored(*_take(ok, msgs, events, x, scores), *times)[0]


def _valid(scores: np.ndarray) -> np.ndarray:
    return (scores >= 0.0) & (scores <= 1.0)  # NaN is neither


def _take(
    mask: np.ndarray, msgs: Sequence[Inbound], events: Sequence[Event], x: np.ndarray, scores: np.ndarray
) -> tuple[Sequence[Inbound], Sequence[Event], np.ndarray, list[float]]:
    """The rows of a batch where ``mask`` is True (the batch itself when it is all True)."""
    if mask.all():
        return msgs, events, x, scores.tolist()
    where = np.flatnonzero(mask).tolist()
    return [msgs[i] for i in where], [events[i] for i in where], x[mask], scores[mask].tolist()
