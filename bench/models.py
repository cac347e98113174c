"""Events/s of the pipeline per kind of model, in process, in one run; and a large reference's import.

Three models, each on JSON events carrying exactly the features it reads:

- ``tensor``: the demo model ``loan-approval`` (``models/``), gradient-boosted trees on one float
  tensor;
- ``columns``: scikit-learn's ColumnTransformer (one-hot on two string columns, scaled numbers) and
  LogisticRegression, exported with one input per column (``tests/zoo.py``) and imported with
  :func:`~stream.lifecycle.importer.import_model` into a temporary registry;
- ``trees``: a random forest on one float tensor of three numbers, imported the same way.

``Pipeline.process`` on batches of :data:`BATCH` events, the models timed in turn, batch after batch,
so that a machine's changing load falls on all of them alike: per event the p50 and best wall time
and the p50 CPU time of the process, events/s from the wall p50, and ``vs_tensor``, a model's events/s
over the demo model's. ``import_seconds``: ``streamscore model import`` of the ``columns`` model with
a reference of :data:`IMPORT_ROWS` rows (a CSV of the zoo's table), the command's wall time from
start to exit (the interpreter's start-up included).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.load import Generated, demo_events
from stream.lifecycle.importer import Options, import_model
from stream.messages import Inbound, inbound
from stream.scoring.model import LoadedModel, load, load_folder
from stream.scoring.pipeline import Pipeline, Topics

ROOT = Path(__file__).parents[1]
TOPICS = Topics("p", "v", "d")
BATCH = 256
BATCHES = 4
"""Distinct batches per model, timed in turn."""
IMPORT_ROWS = 100_000
#: The zoo's models by what they show, and the name each is imported under.
NAMES = {"columns": "zoo-columns", "trees": "zoo-forest"}


def _zoo() -> Any:
    """``tests/zoo.py``, the models and data the tests import (it needs the repository's root on the path)."""
    try:
        from tests import zoo
    except ImportError as exc:
        raise RuntimeError(f"tests/zoo.py cannot be imported (run from the repository root): {exc}") from exc
    return zoo


def imported(kind: str, folder: Path) -> tuple[Path, Path]:
    """The zoo's ``kind`` model (``columns`` or ``trees``) built under ``folder`` and imported into a
    registry there: ``(the imported version's folder, the model file)``; a RuntimeError if it cannot
    be built."""
    zoo = _zoo()
    build = zoo.pipeline if kind == "columns" else zoo.random_forest
    try:
        made = build(folder / f"{kind}-zoo")
    except ImportError as exc:  # scikit-learn, skl2onnx: extras the bench installs
        raise RuntimeError(f"the {kind} model cannot be built: {exc}") from exc
    registry = folder / f"{kind}-registry"
    options = Options(label=made.label)
    return import_model(made.model, made.reference, registry, NAMES[kind], options=options), made.model


def _json(value: Any) -> str | int | float:
    """A zoo table's cell as an event carries it: text, a whole number, or a number."""
    if isinstance(value, str | np.str_):
        return str(value)
    number = float(value)
    return int(number) if number.is_integer() else number


def zoo_events(size: int, names: Sequence[str], seed: int = 1) -> list[Generated]:
    """``size`` events carrying the zoo table's columns ``names``, keyed by entity as the demo's are."""
    zoo = _zoo()
    data = zoo.table(rows=size, seed=seed)
    rng = random.Random(seed)
    when = dt.datetime.now(dt.UTC).isoformat()
    out: list[Generated] = []
    for i in range(size):
        features = {n: _json(data[n][i]) for n in names}
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        entity = f"applicant-{rng.randrange(1_000_000)}"
        event = {"event_id": event_id, "occurred_at": when, "entity_id": entity, "features": features}
        out.append((entity.encode(), orjson.dumps(event), event_id, features))
    return out


def _bench(model: LoadedModel, generated: Sequence[Generated]) -> tuple[Pipeline, list[list[Inbound]]]:
    """A JSON pipeline of ``model`` and the events as batches; each batch checked to score in full."""
    pipeline = Pipeline(
        model,
        TOPICS,
        pii_key=b"k",
        scorer={"version": "0", "revision": None, "worker_id": "w"},
        max_message_bytes=65_536,
    )
    messages = [inbound(v, k, "events", i % 6, i, timestamp_ms=0) for i, (k, v, *_) in enumerate(generated)]
    batches = [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
    for batch in batches:
        result = pipeline.process(batch)
        if result.scored != len(batch) or result.ignored:
            raise RuntimeError(
                f"{model.card.name}: {result.scored} of {len(batch)} events scored, "
                f"dead letters {dict(result.dead_letters)}, ignored {dict(result.ignored)}"
            )
    return pipeline, batches


def _describe(model: LoadedModel) -> dict[str, object]:
    card = model.card
    return {
        "model": f"{card.name} {card.version}",
        "inputs": len(card.inputs),
        "features": len(card.features),
        "string_features": len(model.string_names),
    }


def _timed(benches: dict[str, tuple[Pipeline, list[list[Inbound]]]], repeat: int) -> dict[str, dict]:
    """Per model: wall and CPU µs per event of each batch, the models in turn; summarised."""
    wall: dict[str, list[float]] = {kind: [] for kind in benches}
    cpu: dict[str, list[float]] = {kind: [] for kind in benches}
    for n in range(repeat):
        for kind, (pipeline, batches) in benches.items():
            batch = batches[n % len(batches)]
            started, used = time.perf_counter(), time.process_time()
            pipeline.process(batch)
            cpu[kind].append((time.process_time() - used) / len(batch) * 1e6)
            wall[kind].append((time.perf_counter() - started) / len(batch) * 1e6)
    out: dict[str, dict] = {}
    for kind, times in wall.items():
        p50 = statistics.median(times)
        out[kind] = {
            "pipeline_per_event_us": round(p50, 2),
            "best_per_event_us": round(min(times), 2),
            "cpu_per_event_us": round(statistics.median(cpu[kind]), 2),
            "events_per_s": round(1e6 / p50),
        }
    for figures in out.values():
        figures["vs_tensor"] = round(figures["events_per_s"] / out["tensor"]["events_per_s"], 3)
    return out


def import_seconds(model: Path, folder: Path, rows: int = IMPORT_ROWS) -> dict[str, object]:
    """``streamscore model import`` of ``model`` (the zoo's ``columns`` model) with a reference of
    ``rows`` rows of the zoo's table, in a registry under ``folder``: the command's wall time."""
    zoo = _zoo()
    columns = [*zoo.STRINGS, *zoo.NUMBERS, zoo.LABEL]
    reference = zoo.write_csv(folder / "reference.csv", zoo.table(rows=rows, seed=2), columns)
    command = [
        sys.executable, "-m", "stream.cli.main", "model", "import", str(model), "--name", "large",
        "--reference", str(reference), "--registry", str(folder / "large-registry"), "--label", zoo.LABEL,
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"model import of {rows:,} rows failed: {done.stderr.strip()[-300:]}")
    return {
        "import_seconds": round(seconds, 2),
        "import_rows": rows,
        "import_reference_mib": round(reference.stat().st_size / 2**20, 1),
    }


def run(quick: bool = False, repeat: int | None = None, import_rows: int = IMPORT_ROWS) -> dict[str, object]:
    """Per model: p50, best and CPU per event, events/s and the ratio to the demo model's; then the
    import of ``import_rows`` reference rows. ``repeat``: batches timed per model (default 120 quick,
    400 otherwise)."""
    repeat = repeat or (120 if quick else 400)
    size = BATCH * BATCHES
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        folder = Path(tmp)
        tensor = load(ROOT / "models", "loan-approval")
        loaded = {"tensor": (tensor, demo_events(size, seed=1))}
        files = {}
        for kind in NAMES:
            version, files[kind] = imported(kind, folder)
            model = load_folder(version)
            loaded[kind] = (model, zoo_events(size, model.feature_names))
        benches = {kind: _bench(model, generated) for kind, (model, generated) in loaded.items()}
        out: dict[str, object] = {
            kind: _describe(loaded[kind][0]) | figures for kind, figures in _timed(benches, repeat).items()
        }
        out["batch"] = BATCH
        out |= import_seconds(files["columns"], folder, import_rows)
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=1))
