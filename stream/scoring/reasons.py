"""Reason codes: the K features whose exact contributions to each score's margin are largest.

With ``STREAMSCORE_REASONS=K`` above 0, the pipeline binds :class:`Reasons` to its model when it binds
the model (at start-up and at every reload), so a model it cannot explain (neither a supported tree
ensemble nor a linear model, or a card without an ``attribution``) is refused there, in one line,
and never mid-stream. Per batch, after the model's run: one contributions call for the batch's rows
and one vectorised top-K for them (:mod:`stream.scoring.contributions`: a stable sort by magnitude,
ties in card order, so the same row always gets the same reasons). With K = 0 the pipeline holds
no :class:`Reasons` and does nothing more per event.

The contributions are written as computed (float64, not rounded, as the score is not): a reason
names a card feature and carries a number, never the feature's value, so a personal feature's
reason says only that it mattered.
"""

from __future__ import annotations

import logging

import numpy as np

from stream.errors import ModelError
from stream.scoring.model import LoadedModel

__all__ = ["Reasons", "reasons_for", "refusal"]

log = logging.getLogger("streamscore.worker")


def refusal(k: int, model: LoadedModel, why: object) -> ModelError:
    """The one line that refuses to serve ``model`` with reasons on."""
    return ModelError(
        f"STREAMSCORE_REASONS={k} needs a tree ensemble or a linear model with an attribution in its card, "
        f"and {model.card.name}/{model.card.version} cannot be explained: {why}; re-import the model "
        "(`streamscore model import`) or set STREAMSCORE_REASONS=0"
    )


class Reasons:
    """A model's contributions bound once, and how many reasons each prediction carries."""

    __slots__ = ("_top", "contributions", "k", "names")

    def __init__(self, model: LoadedModel, k: int) -> None:
        """:class:`ModelError` (one line saying what to do) when ``model`` cannot be explained."""
        from stream.scoring.contributions import contributions_for, top_reasons

        self._top = top_reasons
        try:
            self.contributions = contributions_for(model)
        except ModelError as exc:
            raise refusal(k, model, exc) from None
        self.names, self.k = model.feature_names, k

    def __call__(self, x: np.ndarray, texts: np.ndarray | None) -> list[dict[str, float] | None]:
        """Each row's reasons (``x``, ``texts`` as the model took them); a row whose contributions
        cannot be computed gets none (its prediction still goes out)."""
        try:
            return list(self._top(self.contributions(x, texts), self.names, self.k))
        except Exception as exc:  # one bad row must not cost the batch its predictions
            log.error("reasons not computed for a batch of %d (%s): row by row", len(x), exc)
        found: list[dict[str, float] | None] = []
        for i in range(len(x)):
            try:
                one = self.contributions(x[i : i + 1], None if texts is None else texts[i : i + 1])
                found += self._top(one, self.names, self.k)
            except Exception:  # the prediction goes out without its reasons
                found.append(None)
        return found


def reasons_for(model: LoadedModel, k: int) -> Reasons | None:
    """The reasons of ``model``'s predictions with ``k`` per prediction; None when ``k`` is 0."""
    return Reasons(model, k) if k > 0 else None
