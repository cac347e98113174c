"""The model card: ``models/<name>/<version>/card.json``, everything needed to serve and audit a model.

What the graph takes (``inputs``: one float tensor of every feature, or one input per column, of
numbers or strings), what it answers (``output``: a binary or multiclass classifier's probabilities,
or a regressor's value), each feature's type and the reference distributions drift is measured
against. ``streamscore model import`` and ``model train`` write it; loading checks the graph agrees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stream.contract_types import Identifier, Sha256


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Contract):
    """One model input, in the card's order."""

    name: Identifier
    type: Literal["number", "integer", "string"] = Field(
        description="JSON number, a whole number, or a string (a category)."
    )
    kind: Literal["numeric", "categorical"] = "numeric"
    personal: bool = Field(False, description="Personal data: hashed in every output, never clear.")
    values: list[int] | None = Field(None, description="Allowed codes of a categorical feature.")
    categories: list[str] | None = Field(
        None,
        description="A string feature's categories in the reference, most frequent first: a category's "
        "code is its index; one never seen in the reference is scored and counted as unseen.",
    )
    minimum: float | None = None
    maximum: float | None = None


class ReferenceStats(_Contract):
    """Training-time distribution of one feature or of the score, for drift comparison."""

    count: int
    mean: float
    std: float
    minimum: float
    maximum: float
    bin_edges: list[float] = Field(description="Inner quantile edges; bins are (-inf, e0], ... (en, inf).")
    bin_fractions: list[float]
    categories: dict[str, float] | None = Field(None, description="Fraction of each category.")


Task = Literal["binary", "multiclass", "regression"]
InputType = Literal["float", "double", "int32", "int64", "string"]


class ModelInput(_Contract):
    """One input of the ONNX graph and the card's features that feed it, in its column order."""

    name: str = Field(description="The graph input's name.")
    type: InputType = Field(description="Its element type.")
    features: list[Identifier] = Field(description="The features it takes: one for a column input.")


class ModelOutput(_Contract):
    task: Task = Field("binary", description="What the model answers: a class of two or several, or a value.")
    tensor: str = Field(
        description="ONNX output holding class probabilities ([N, C], or skl2onnx's ZipMap: a sequence "
        "of maps), or a regressor's values ([N] or [N, 1])."
    )
    zipmap: bool = Field(False, description="The probabilities are a sequence of maps (skl2onnx's ZipMap).")
    positive_index: int = Field(1, description="Binary: the positive class's column.")
    positive_label: str = Field("", description="Binary: the label of a score at or above the threshold.")
    negative_label: str = Field("", description="Binary: the label of a score below the threshold.")
    classes: list[str] | None = Field(
        None, description="Multiclass: the labels of the probability columns, in order."
    )
    threshold: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _task_fields(self) -> Self:
        if self.task == "binary" and not (self.positive_label and self.negative_label):
            raise ValueError("a binary classifier's output needs positive_label and negative_label")
        if self.task == "multiclass" and len(self.classes or ()) < 2:
            raise ValueError("a multiclass output needs the classes of its probability columns")
        return self


class ReliabilityBin(_Contract):
    """One bin of raw scores on the labelled reference: how often its events were positive."""

    lower: float = Field(description="The bin's lowest raw score (bins: ten equal widths of [0, 1]).")
    upper: float
    score: float = Field(description="Mean raw score of the bin's reference rows.")
    positive_rate: float = Field(description="Share of the bin's reference rows that were positive.")
    count: int


class Calibration(_Contract):
    """What turns a binary classifier's raw score into the probability its event is positive, fitted on
    the labelled reference: the estimated performance of unlabelled windows rests on it."""

    method: Literal["isotonic", "platt"] = Field(
        description="isotonic: np.interp over the knots; platt: sigmoid(slope * logit(score) + intercept)."
    )
    scores: list[float] = Field(default_factory=list, description="Isotonic: the knots' raw scores.")
    probabilities: list[float] = Field(
        default_factory=list, description="Isotonic: the knots' probabilities."
    )
    slope: float | None = Field(None, description="Platt: the slope on the score's logit.")
    intercept: float | None = Field(None, description="Platt: the intercept.")
    error_before: float = Field(description="Expected calibration error of the raw scores on the reference.")
    error_after: float = Field(
        description="Expected calibration error of the calibrated scores on the reference, cross-fitted "
        "(each half calibrated by a fit on the other)."
    )
    bins: list[ReliabilityBin] = Field(description="The reliability diagram of the raw scores.")
    reference: dict[str, float] = Field(
        description="Realised accuracy, precision, recall, f1 and roc_auc on the reference at the threshold."
    )
    margin: float = Field(
        0.05, ge=0.0, le=1.0, description="An estimate below its reference figure by more than this alerts."
    )
    rows: int = Field(description="Labelled reference rows fitted on.")


class Attribution(_Contract):
    """What exact per-feature contributions to the score's margin need beyond the graph, from the
    reference rows: a tree ensemble's node covers, or a linear model's column means."""

    method: Literal["tree", "linear"] = Field(description="Path-dependent TreeSHAP, or a linear model's.")
    expected_value: float = Field(
        description="The margin's mean on the reference (log-odds for a binary classifier): contributions "
        "add up to the margin less this."
    )
    covers: list[float] | None = Field(
        None, description="Trees: the reference rows through each node, in the graph's node order."
    )
    means: list[float] | None = Field(
        None, description="Linear: the reference mean of each input column of the linear node."
    )
    columns: list[Identifier | None] | None = Field(
        None, description="Linear: the feature each input column comes from (null: a constant column)."
    )
    rows: int = Field(description="Reference rows.")


class ModelCard(_Contract):
    """``models/<name>/<version>/card.json``: everything needed to serve and audit a model."""

    name: Identifier
    version: Identifier
    created_at: datetime
    description: str
    sha256: Sha256 = Field(description="SHA-256 of model.onnx; loading refuses any other file.")
    input_tensor: str | None = Field(
        None, description="Older cards: the one float tensor [N, features] (``inputs`` in newer ones)."
    )
    inputs: list[ModelInput] = Field(
        default_factory=list, description="The graph's inputs and the features feeding each."
    )
    features: list[FeatureSpec]
    output: ModelOutput
    training: dict[str, Any] = Field(description="Data generator, seed, fingerprint, sizes, libraries.")
    metrics: dict[str, float] = Field(description="Holdout metrics.")
    reference: dict[str, ReferenceStats] = Field(description="Per feature, and 'score'.")
    calibration: Calibration | None = Field(
        None, description="Binary classifiers with a labelled reference: the score's calibration."
    )
    attribution: Attribution | None = Field(
        None, description="What exact per-feature contributions (reasons) need: trees' covers, linear means."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_tensor(cls, data: Any) -> Any:
        """An older card's ``input_tensor`` is one float input taking every feature."""
        if isinstance(data, dict) and not data.get("inputs") and data.get("input_tensor"):
            names = [f["name"] if isinstance(f, dict) else f.name for f in data.get("features", [])]
            data = {**data, "inputs": [{"name": data["input_tensor"], "type": "float", "features": names}]}
        return data

    @model_validator(mode="after")
    def _inputs_cover_features(self) -> Self:
        fed = [name for i in self.inputs for name in i.features]
        names = [f.name for f in self.features]
        if sorted(fed) != sorted(names) or len(set(names)) != len(names):
            raise ValueError(f"inputs feed {fed}, the card lists {names}: each feature must feed one input")
        return self
