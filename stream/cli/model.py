"""``streamscore model``: train, import, register, list and promote models, in the folder registry or MLflow.

With ``MLFLOW_TRACKING_URI`` set, ``list`` and ``promote`` speak to MLflow's registry (``--registry``
names a folder registry instead); without it, to the folder registry (STREAMSCORE_MODEL_DIR).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stream.errors import StreamscoreError

model_app = typer.Typer(help="The model registry: a folder, or MLflow.", no_args_is_help=True)

EstimateMargin = Annotated[
    float,
    typer.Option(
        help="Binary, labelled: alert when a window's estimated accuracy, precision, recall, F1 or ROC AUC "
        "falls below the reference's by more than this."
    ),
]
NO_ESTIMATE = "no labelled reference: no performance estimate"

Registry = Annotated[
    Path | None,
    typer.Option(
        help="Folder registry (default: MLflow when MLFLOW_TRACKING_URI is set, else STREAMSCORE_MODEL_DIR)."
    ),
]


def _settings():  # noqa: ANN202 - the CLI's own helper, imported late (the CLI module imports this one)
    from stream.cli.common import settings

    return settings()


def _fail(exc: Exception) -> typer.Exit:
    from stream.cli.common import fail

    return fail(str(exc))


@model_app.command("train")
def model_train(
    name: Annotated[str, typer.Option(help="Model name.")] = "loan-approval",
    version: Annotated[str | None, typer.Option(help="Version (default: the next number).")] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Registry folder (default: STREAMSCORE_MODEL_DIR).")
    ] = None,
    samples: Annotated[int, typer.Option(help="Generated examples (75% train, 25% holdout).")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of data and model.")] = 7,
    concept: Annotated[
        str, typer.Option(help="Train on the generator's concept before (base) or after (drifted) a change.")
    ] = "base",
    estimate_margin: EstimateMargin = 0.05,
    refresh: Annotated[
        bool,
        typer.Option(
            help="Train nothing: give the existing --version the calibration and node covers newer "
            "cards hold, from the same generated data (its model file, and SHA-256, stay as they are)."
        ),
    ] = False,
) -> None:
    """Train gradient-boosted trees on generated loan applications and register them in ONNX."""
    from stream.tools.train import refresh as refresh_card
    from stream.tools.train import train

    if concept not in ("base", "drifted"):
        raise _fail(ValueError("--concept is base or drifted"))
    _check_margin(estimate_margin)
    if refresh:
        if version is None:
            raise _fail(ValueError("--refresh needs the --version to refresh"))
        try:
            folder = refresh_card((registry or _settings().model_dir) / name / version, estimate_margin)
        except StreamscoreError as exc:
            raise _fail(exc) from None
        typer.echo(f"refreshed the card of {folder}")
        typer.echo(_estimate_line(folder))
        return
    try:
        folder = train(
            registry or _settings().model_dir,
            name=name,
            version=version,
            samples=samples,
            seed=seed,
            drifted=concept == "drifted",
            margin=estimate_margin,
        )
    except StreamscoreError as exc:
        raise _fail(exc) from None
    typer.echo(f"registered {folder}")
    typer.echo(_estimate_line(folder))


def _check_margin(margin: float) -> None:
    if not 0.0 <= margin <= 1.0:
        raise _fail(ValueError(f"--estimate-margin {margin} is not between 0 and 1"))


def _estimate_line(folder: Path) -> str:
    """What the new version's card says of performance estimation."""
    from stream.model_card import ModelCard

    card = ModelCard.model_validate_json((folder / "card.json").read_bytes())
    c = card.calibration
    if card.output.task != "binary":
        return f"a {card.output.task} model: no performance estimate"
    if c is None:
        return NO_ESTIMATE
    return (
        f"performance estimate: {c.method} calibration on {c.rows:,} labelled rows, calibration error "
        f"{c.error_before:.4f} -> {c.error_after:.4f}, alert margin {c.margin}"
    )


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


@model_app.command("import")
def model_import(
    model: Annotated[Path, typer.Argument(help="The ONNX model file.")],
    name: Annotated[str, typer.Option(help="Model name.")],
    reference: Annotated[Path, typer.Option(help="Reference rows as the model sees them: CSV or Parquet.")],
    version: Annotated[str | None, typer.Option(help="Version (default: the next number).")] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Registry folder (default: STREAMSCORE_MODEL_DIR).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="The reference's label column: holdout metrics.")] = None,
    positive: Annotated[
        str | None, typer.Option(help="Binary: the positive class (default: the larger label).")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="A,B,...: the columns of a [N, F] input, in order.")
    ] = None,
    categorical: Annotated[str | None, typer.Option(help="C,...: numbers that are category codes.")] = None,
    personal: Annotated[str | None, typer.Option(help="P,...: personal data, hashed in outputs.")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    threshold: Annotated[float, typer.Option(help="Binary: the decision threshold.")] = 0.5,
    estimate_margin: EstimateMargin = 0.05,
) -> None:
    """Import any ONNX classifier or regressor with its reference data (and into MLflow when set)."""
    from stream.lifecycle.importer import Options, import_model, publish

    config = _settings()
    options = Options(
        label=label,
        positive=positive,
        features=_names(features) or None,
        categorical=_names(categorical),
        personal=_names(personal),
        threshold=threshold,
        margin=estimate_margin,
    )
    _check_margin(estimate_margin)
    try:
        folder = import_model(model, reference, registry or config.model_dir, name, version, options)
        typer.echo(f"imported {folder}")
        typer.echo(_estimate_line(folder))
        for line in publish(folder, config.mlflow_tracking_uri, alias):
            typer.echo(line)
    except StreamscoreError as exc:
        raise _fail(exc) from None


@model_app.command("register")
def model_register(
    folder: Annotated[Path, typer.Argument(help="A folder model: <registry>/<name>/<version>.")],
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
) -> None:
    """Publish a folder model to MLflow (MLFLOW_TRACKING_URI): ONNX file and card, metrics, card tags."""
    from stream.lifecycle.mlflow_registry import register

    try:
        name, version = register(_settings().mlflow_tracking_uri, folder, alias)
    except StreamscoreError as exc:
        raise _fail(exc) from None
    typer.echo(f"registered models:/{name}/{version}" + (f" as @{alias}" if alias else ""))


@model_app.command("list")
def model_list(registry: Registry = None) -> None:
    """List the registered models and versions: sha256, holdout metrics, aliases."""
    from stream.lifecycle import folder, mlflow_registry

    config = _settings()
    try:
        if registry is None and config.mlflow_tracking_uri:
            lines = list(mlflow_registry.listing(config.mlflow_tracking_uri))
        else:
            lines = list(folder.listing(registry or config.model_dir))
    except StreamscoreError as exc:
        raise _fail(exc) from None
    for line in lines:
        typer.echo(line)


@model_app.command("promote")
def model_promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="The version to promote.")],
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "champion",
    registry: Registry = None,
) -> None:
    """Move an alias to a version (MLflow, or a folder registry's pointer); workers follow it."""
    from stream.lifecycle import folder, mlflow_registry

    config = _settings()
    try:
        if registry is None and config.mlflow_tracking_uri:
            before = mlflow_registry.promote(config.mlflow_tracking_uri, name, version, alias)
        else:
            before = folder.set_alias(registry or config.model_dir, name, alias, version)
    except StreamscoreError as exc:
        raise _fail(exc) from None
    typer.echo(f"{name}@{alias}: {before or 'none'} -> {version}")


@model_app.command("compare")
def model_compare(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to read the drift topic.")] = 30.0,
) -> None:
    """Print the latest comparison of champion and challenger on outcomes (from STREAMSCORE_DRIFT_TOPIC)."""
    from stream.errors import ConfigError
    from stream.kafka.config import client_config
    from stream.outcomes.pairing import latest_comparison

    config = _settings()
    try:
        report = latest_comparison(client_config(config), config.drift_topic, timeout)
    except ConfigError as exc:
        raise _fail(exc) from None
    if report is None:
        raise _fail(
            ValueError(
                f"no comparison report on {config.drift_topic!r}: is a challenger set "
                "(STREAMSCORE_CHALLENGER_URI), and the outcome worker running?"
            )
        )
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    from stream.terminal import printable

    r = report
    champion, challenger = (  # names read from the drift topic
        printable(f"{r.champion.name}/{r.champion.version}"),
        printable(f"{r.challenger.name}/{r.challenger.version}"),
    )
    typer.echo(
        f"{challenger} (challenger) against {champion} (champion) on {r.pairs:,} paired outcomes: {r.verdict}"
    )
    low, high = r.log_loss_interval
    typer.echo(
        f"log loss           {r.log_loss['champion']:.4f} -> {r.log_loss['challenger']:.4f}  "
        f"difference {r.log_loss_difference:+.4f} [{low:+.4f}, {high:+.4f}] "
        f"(look {r.look}, level {r.level:.2g})"
    )
    if r.roc_auc_difference is not None and r.roc_auc_interval is not None:
        typer.echo(
            f"ROC AUC            {r.roc_auc['champion']:.4f} -> {r.roc_auc['challenger']:.4f}  difference "
            f"{r.roc_auc_difference:+.4f} [{r.roc_auc_interval[0]:+.4f}, "
            f"{r.roc_auc_interval[1]:+.4f}] (DeLong)"
        )
    typer.echo(f"accuracy           {r.accuracy['champion']:.4f} -> {r.accuracy['challenger']:.4f}")
    typer.echo(
        f"calibration error  {r.calibration_error['champion']:.4f} -> {r.calibration_error['challenger']:.4f}"
    )
