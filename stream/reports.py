"""The reports on the drift topic, as pydantic models: each JSON document's ``kind`` says which.

- :class:`DriftReport`: the scoring worker's drift ``window`` and ``alarm`` reports, with the
  performance estimated from calibrated scores when the card has a calibration;
- :class:`PerformanceReport`: the outcome worker's rolling figures on true outcomes;
- :class:`EstimateCheckReport`: the outcome worker's check of an estimated window on its outcomes.

They are listed with the other contracts in :data:`stream.contracts.CONTRACTS`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stream.contract_types import Identifier

__all__ = [
    "CheckedWindow",
    "DriftReport",
    "EstimateCheckReport",
    "EstimatedFigure",
    "EstimatedMetric",
    "MetricCheck",
    "OffsetRange",
    "PerformanceReport",
]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OffsetRange(_Contract):
    first: int
    last: int


EstimatedMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc"]


class EstimatedFigure(_Contract):
    """An estimated figure and the 95% interval of the realised one if the calibration holds."""

    value: float
    lower: float
    upper: float


class DriftReport(_Contract):
    """The window of recent scored events compared with the model card's reference (drift topic).

    ``kind`` is ``window`` when a window has filled, ``alarm`` as soon as a change detector fires.
    """

    kind: Literal["window", "alarm"]
    model_name: Identifier
    model_version: Identifier
    worker_id: str
    partitions: list[int] = Field(description="Input partitions whose windows are compared.")
    events: int = Field(description="Events in the window.")
    window_start: AwareDatetime = Field(description="Earliest occurred_at in the window.")
    window_end: AwareDatetime = Field(description="Latest occurred_at in the window.")
    offsets: dict[str, OffsetRange] = Field(description="First and last input offset per topic[partition].")
    psi: dict[str, float] = Field(description="Population stability index of each feature and of 'score'.")
    distance: dict[str, float] = Field(
        description="Kolmogorov-Smirnov (numeric) or total variation (categorical) distance."
    )
    thresholds: dict[Literal["psi", "distance"], float]
    drifted: list[str] = Field(description="Names whose PSI or distance is above its threshold.")
    alarms: list[str] = Field(
        description="Change detectors that fired: 'score' (ADWIN) or a feature (Page-Hinkley)."
    )
    verdict: Literal["ok", "drift"]
    unseen: dict[str, float] = Field(
        default_factory=dict,
        description="String features: the window's share of categories the reference never saw.",
    )
    estimated: dict[EstimatedMetric, EstimatedFigure] | None = Field(
        None,
        description="Window reports of a model card with a calibration: performance estimated without "
        "labels from the calibrated scores, each with the 95% interval of the realised figure if the "
        "calibration holds (a metric undefined on the window is left out).",
    )
    estimate_reference: dict[str, float] | None = Field(
        None, description="The realised figures on the card's labelled reference (calibration.reference)."
    )
    estimate_margin: float | None = Field(
        None, description="An estimate below its reference figure by more than this is listed below."
    )
    estimate_below: list[EstimatedMetric] | None = Field(
        None, description="The metrics whose estimate is below reference - margin."
    )
    estimate_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="The card's threshold the estimate is made at."
    )


class PerformanceReport(_Contract):
    """Rolling model performance on joined outcomes (drift topic, ``kind`` performance)."""

    kind: Literal["performance"] = "performance"
    model_name: Identifier
    model_version: Identifier
    worker_id: str
    outcomes: int = Field(description="Joined outcomes in the rolling window.")
    accuracy: float
    roc_auc: float | None = Field(description="None while the window holds a single class.")
    log_loss: float
    calibration_error: float = Field(description="Expected calibration error over 10 equal-width bins.")
    loss_alarm: bool = Field(
        description="ADWIN on the per-event log loss flagged a change since the last report."
    )
    counts: dict[str, int] = Field(
        description="Since the worker started: joined, duplicate, invalid, unmatched outcomes, expired "
        "predictions; and entries waiting now."
    )
    sample: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of event ids joined (STREAMSCORE_OUTCOME_SAMPLE)."
    )
    verdict: Literal["ok", "decay"]


class CheckedWindow(_Contract):
    """The drift window report's window, as it named it."""

    worker_id: str = Field(description="The scoring worker that reported the window.")
    window_start: AwareDatetime
    window_end: AwareDatetime
    offsets: dict[str, OffsetRange] = Field(description="First and last input offset per topic[partition].")


class MetricCheck(_Contract):
    """One metric: the window's estimate and the figure realised on its outcomes."""

    estimate: float
    interval: tuple[float, float] = Field(description="The estimate's 95% interval.")
    realised: float | None = Field(description="On the window's outcomes; None where undefined.")
    error: float | None = Field(description="Estimate minus realised.")
    inside: bool | None = Field(description="The realised figure fell inside the interval.")


class EstimateCheckReport(_Contract):
    """A window's estimated performance beside the figures realised on its outcomes (drift topic)."""

    kind: Literal["estimate_check"] = "estimate_check"
    model_name: Identifier
    model_version: Identifier
    worker_id: str = Field(description="The outcome worker that checked.")
    at: AwareDatetime
    window: CheckedWindow
    events: int = Field(ge=0, description="Events in the window.")
    outcomes: int = Field(ge=0, description="The window's events joined with their outcome.")
    complete: bool = Field(
        description="Every event joined; else the outcome retention had passed since the window's report "
        "(or more windows waited than the worker keeps)."
    )
    threshold: float = Field(
        ge=0.0, le=1.0, description="The score at or above which an event counts as predicted positive."
    )
    metrics: dict[str, MetricCheck] = Field(description="accuracy, precision, recall, f1, roc_auc.")
