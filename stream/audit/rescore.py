"""Re-scoring a prediction from its provenance: the input record, the model by sha256, the hot path's code.

The input is decoded and its features read exactly as the worker does (its input format's decoder,
:class:`~stream.scoring.codec.FeatureReader`), scored by the model whose sha256 the provenance names, and its
provenance record built again by the worker's own :class:`~stream.scoring.records.RecordBuilder` with the
recorded scorer, role and times. The two records are compared field by field in contract order:
equal means bit-exact (score, feature hash, personal hashes, input, model); otherwise the first
field that differs is named. ``explain`` and ``verify`` both use this one path. Asked to
(``explain=True``), it also computes every feature's exact contribution to the margin
(:mod:`stream.scoring.contributions`), for the rows as the model took them in one call per model,
as the worker computes reason codes; a model that cannot be explained says why in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from stream.audit.errors import ModelGone
from stream.audit.formats import Formats
from stream.contracts import Event, ModelCard, ModelRef, Provenance
from stream.errors import ModelError, PoisonEvent
from stream.messages import Inbound
from stream.scoring import model as registry
from stream.scoring.features import FeatureReader
from stream.scoring.model import LoadedModel
from stream.scoring.records import RecordBuilder, Topics

if TYPE_CHECKING:
    from stream.scoring.contributions import Contributions

__all__ = ["Rescored", "Rescorer", "first_difference"]

_TOPICS = Topics("predictions", "provenance", "dead-letters")  # names unused: only values are compared


@dataclass(frozen=True, slots=True)
class Rescored:
    """One provenance record checked against its input and model."""

    recorded: Provenance
    card: ModelCard | None = None
    event: Event | None = None
    row: np.ndarray | None = None  # float32 features in card order: what the model saw
    score: float | None = None  # the score now
    rebuilt: dict[str, Any] | None = None  # the provenance record built again
    difference: str | None = None  # first differing field; None when bit-exact
    detail: str = ""
    missing: str = ""  # why it could not be re-scored (its model is gone), when it could not
    contributions: dict[str, float] | None = None  # each feature's contribution, card order
    expected_value: float | None = None  # the margin's expectation on the card's reference
    margin: float | None = None  # expected_value plus the contributions: the score's raw margin
    unexplained: str = ""  # why the contributions could not be computed, when asked for and not

    @property
    def exact(self) -> bool:
        return self.difference is None and not self.missing


def first_difference(then: dict[str, Any], now: dict[str, Any], prefix: str = "") -> str | None:
    """The first field (dotted path, in ``now``'s order) whose value differs between the records."""
    for name in [*now, *(k for k in then if k not in now)]:
        a, b = then.get(name), now.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = first_difference(a, b, f"{prefix}{name}.")
            if inner is not None:
                return inner
        elif a != b:
            return prefix + name
    return None


def _at(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return doc


class Rescorer:
    """Scores inputs again with the registry's models, found by the sha256 their provenance names."""

    def __init__(self, root: Path, pii_key: bytes, formats: Formats) -> None:
        self.root, self._key, self.formats = root, pii_key, formats
        self._models: dict[str, LoadedModel] = {}
        self._explainers: dict[str, Contributions | str] = {}  # by sha256; str: why not

    def model(self, ref: ModelRef) -> LoadedModel:
        """The registry's model of sha256 ``ref.sha256`` (verified); :class:`ModelGone` when none has it."""
        if ref.sha256 not in self._models:
            self._models[ref.sha256] = self._find(ref)
        return self._models[ref.sha256]

    def _find(self, ref: ModelRef) -> LoadedModel:
        if not self.root.is_dir():
            raise ModelGone(f"model registry {self.root} is not a folder: set STREAMSCORE_MODEL_DIR")
        others = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name != ref.name)
        for name in [ref.name, *others]:
            found = registry.versions(self.root, name)
            for version in sorted(found, key=lambda v: v != ref.version):  # the recorded version first
                try:
                    card = registry.load_card(self.root / name / version)
                    if card.sha256 == ref.sha256:
                        return registry.load(self.root, name, version)  # checks the file's sha256 too
                except ModelError:
                    continue
        raise ModelGone(
            f"model {ref.name}/{ref.version} (sha256 {ref.sha256[:12]}…) is no longer in registry "
            f"{self.root}: restore that version to re-score its predictions"
        )

    def explainer(self, loaded: LoadedModel) -> Contributions | str:
        """The contributions of ``loaded`` (built once), or one line saying why it cannot be explained."""
        if loaded.card.sha256 not in self._explainers:
            from stream.scoring.contributions import contributions_for

            try:
                self._explainers[loaded.card.sha256] = contributions_for(loaded)
            except Exception as exc:  # ModelError: it cannot be; anything else: the rest is still shown
                self._explainers[loaded.card.sha256] = f"the model cannot be explained: {exc}"
        return self._explainers[loaded.card.sha256]

    def rescore(self, pairs: Sequence[tuple[Provenance, Inbound]], explain: bool = False) -> list[Rescored]:
        """Each provenance record checked against its input; one onnxruntime run per model (and with
        ``explain``, one contributions call)."""
        out: list[Rescored | None] = [None] * len(pairs)
        by_model: dict[str, list[int]] = {}
        for i, (recorded, _) in enumerate(pairs):
            by_model.setdefault(recorded.model.sha256, []).append(i)
        for indices in by_model.values():
            try:
                loaded = self.model(pairs[indices[0]][0].model)
            except ModelGone as exc:
                for i in indices:
                    out[i] = Rescored(pairs[i][0], missing=str(exc))
                continue
            self._rescore_with(loaded, [(i, *pairs[i]) for i in indices], out, explain)
        return [r for r in out if r is not None]

    def _rescore_with(
        self,
        loaded: LoadedModel,
        pairs: list[tuple[int, Provenance, Inbound]],
        out: list[Rescored | None],
        explain: bool = False,
    ) -> None:
        """Re-score the ``pairs`` one model made, in one run, into ``out`` at their indices."""
        reader = FeatureReader(loaded.card.features, wide=loaded.feeds.wide)
        ready: list[tuple[int, Event, list[float], tuple[str, ...]]] = []
        events = self.formats.inputs(loaded.card, [msg for _, _, msg in pairs])
        recorded = {i: (provenance, msg) for i, provenance, msg in pairs}
        for (i, provenance, _), event in zip(pairs, events, strict=True):
            try:
                if isinstance(event, PoisonEvent):
                    raise event
                ready.append((i, event, *reader.row(event.features)))
            except PoisonEvent as exc:
                out[i] = Rescored(provenance, loaded.card, difference="input", detail=f"input: {exc}")
        if not ready:
            return
        dtype = np.float64 if loaded.feeds.wide else np.float32
        rows = np.array([row for _, _, row, _ in ready], dtype=dtype)
        texts = np.array([t for *_, t in ready], dtype=object) if loaded.string_names else None
        answer = loaded.predict(rows, texts)
        explained = self._explain(loaded, rows, texts) if explain else None
        for k, (i, event, _, strings) in enumerate(ready):
            label = None if answer.labels is None else answer.labels[k]
            score = float(answer.scores[k])
            checked = self._compare(
                recorded[i], loaded.card, event, rows[k].astype(np.float32), score, strings, label
            )
            out[i] = checked if explained is None else _with_contributions(checked, loaded, explained, k)

    def _explain(
        self, loaded: LoadedModel, rows: np.ndarray, texts: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, float] | str:
        """The rows' contributions, margins and expected value; or why they cannot be computed."""
        explainer = self.explainer(loaded)
        if isinstance(explainer, str):
            return explainer
        try:
            return explainer(rows, texts), explainer.margin(rows, texts), float(explainer.expected_value)
        except Exception as exc:  # onnxruntime and numpy raise their own types
            return f"the contributions cannot be computed: {exc}"

    def _compare(
        self,
        pair: tuple[Provenance, Inbound],
        card: ModelCard,
        event: Event,
        row: np.ndarray,
        score: float,
        strings: tuple[str, ...] = (),
        label: str | None = None,
    ) -> Rescored:
        recorded, msg = pair
        builder = RecordBuilder.for_card(
            _TOPICS, card, pii_key=self._key, scorer=recorded.scorer.model_dump(), role=recorded.role
        )
        times = (recorded.received_at, recorded.scored_at, recorded.emitted_at)
        records, scored = builder.scored(
            [msg], [event], row[None, :], [score], *times,
            texts=[strings] if strings else None, decided=None if label is None else [label],
        )  # fmt: skip
        if not scored:
            detail = f"score: provenance {recorded.score!r}, re-scored {score!r} (not a probability)"
            return Rescored(recorded, card, event, row, score, difference="score", detail=detail)
        try:
            rebuilt = Provenance.model_validate_json(records[1].value).model_dump()
        except ValidationError as exc:  # the input's event id or time cannot stand in a record
            return Rescored(recorded, card, event, row, score, difference="input", detail=f"input: {exc}")
        then = recorded.model_dump()
        difference = first_difference(then, rebuilt)
        detail = ""
        if difference is not None:
            detail = (
                f"{difference}: provenance {_at(then, difference)!r}, re-scored {_at(rebuilt, difference)!r}"
            )
        return Rescored(recorded, card, event, row, score, rebuilt, difference, detail)


def _with_contributions(
    checked: Rescored, loaded: LoadedModel, explained: tuple[np.ndarray, np.ndarray, float] | str, k: int
) -> Rescored:
    """``checked`` with row ``k``'s contributions (or why there are none)."""
    if isinstance(explained, str):
        return replace(checked, unexplained=explained)
    values, margins, expected = explained
    return replace(
        checked,
        contributions=dict(zip(loaded.feature_names, values[k].tolist(), strict=True)),
        expected_value=expected,
        margin=float(margins[k]),
    )
