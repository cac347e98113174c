"""Drift detection on seeded streams: false alarms, detection delays, cost, and a plot.

``python -m bench.drift`` (``make drift-plot``) replays the generator's events through the drift
monitor and the outcome tracker in process (the same code the workers run, without a broker),
over several seeds: stationary streams for false alarms, a feature shift and a concept change
at a known event for detection delays. It writes ``bench/results/drift-<date>.json`` and
``docs/drift.png`` (statistics over time around the injected changes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from stream.drift.monitor import DriftMonitor, Report
from stream.drift.performance import PerformanceTracker
from stream.scoring.model import LoadedModel, load
from stream.tools import datagen

ROOT = Path(__file__).parents[1]
EVENTS = 20_000
CHANGE_AT = 10_000
WINDOW = 2_000
PARTITIONS = 6
BATCH = 64
OUTCOME_WINDOW = 1_000
START = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC).timestamp()


def _stream(model: LoadedModel, seed: int, drift_at: int | None, kind: datagen.DriftKind) -> tuple:
    pairs = list(itertools.islice(datagen.applications(seed, drift_at, kind), EVENTS))
    x = np.array([[f[k] for k in model.feature_names] for f, _ in pairs], dtype=np.float32)
    labels = np.array([y for _, y in pairs], dtype=bool)
    parts = np.random.default_rng(seed).integers(0, PARTITIONS, EVENTS)
    offsets = np.zeros(EVENTS, dtype=np.int64)
    for p in range(PARTITIONS):
        offsets[parts == p] = np.arange((parts == p).sum())
    times = START + np.arange(EVENTS) / 1_000.0  # 1,000 events/s of event time
    return x, model.predict_proba(x), labels, parts, times, offsets


def _drift(model: LoadedModel, data: tuple) -> tuple[list[tuple[int, Report]], float]:
    """Reports with the event count at which each came, and the monitor's cost per event in µs."""
    x, scores, _, parts, times, offsets = data
    monitor = DriftMonitor(model.card, window=WINDOW, partitions=PARTITIONS)
    out: list[tuple[int, Report]] = []
    started = time.perf_counter()
    for i in range(0, EVENTS, BATCH):
        j = slice(i, i + BATCH)
        out += [
            (min(i + BATCH, EVENTS), r)
            for r in monitor.update(x[j], scores[j], parts[j], times[j], offsets[j])
        ]
    return out, (time.perf_counter() - started) / EVENTS * 1e6


def _performance(data: tuple) -> tuple[list[int], list[tuple[int, float, float]]]:
    """Loss alarms (event index) and (event, rolling accuracy, rolling log loss) every 200 outcomes."""
    _, scores, labels, *_ = data
    tracker = PerformanceTracker(window=OUTCOME_WINDOW)
    alarms, curve = [], []
    for i, (y, s) in enumerate(zip(labels.tolist(), scores.tolist(), strict=True)):
        if tracker.add(y, s):
            alarms.append(i + 1)
        if (i + 1) % 200 == 0:
            now = tracker.figures()
            curve.append((i + 1, now.accuracy, now.log_loss))
    return alarms, curve


def measure(model: LoadedModel, seeds: list[int]) -> dict[str, object]:
    stationary, feature, concept, costs = [], [], [], []
    for seed in seeds:
        reports, cost = _drift(model, _stream(model, seed, None, "feature"))
        costs.append(cost)
        loss_alarms, _ = _performance(_stream(model, seed, None, "concept"))
        stationary.append(
            {
                "seed": seed,
                "window_alarms": sum(r.kind == "window" and bool(r.drifted) for _, r in reports),
                "detector_alarms": sum(len(r.alarms) for _, r in reports if r.kind == "alarm"),
                "loss_alarms": len(loss_alarms),
                "max_psi": max(max(r.psi.values()) for _, r in reports if r.kind == "window"),
                "max_distance": max(max(r.distance.values()) for _, r in reports if r.kind == "window"),
            }
        )
        reports, _ = _drift(model, _stream(model, seed, CHANGE_AT, "feature"))
        after = [(n, r) for n, r in reports if n > CHANGE_AT]
        detector = next((n for n, r in after if r.kind == "alarm"), None)
        window = next((n for n, r in after if r.kind == "window" and r.drifted), None)
        false_before = sum(1 for n, r in reports if n <= CHANGE_AT and r.verdict == "drift")
        feature.append(
            {
                "seed": seed,
                "detector_delay": detector - CHANGE_AT if detector else None,
                "first_detectors": next((r.alarms for n, r in after if r.kind == "alarm"), []),
                "window_delay": window - CHANGE_AT if window else None,
                "false_alarms_before": false_before,
            }
        )
        data = _stream(model, seed, CHANGE_AT, "concept")
        input_reports, _ = _drift(model, data)
        loss_alarms, _ = _performance(data)
        concept.append(
            {
                "seed": seed,
                "loss_alarm_delay": next((n - CHANGE_AT for n in loss_alarms if n > CHANGE_AT), None),
                "false_alarms_before": sum(1 for n in loss_alarms if n <= CHANGE_AT),
                "input_drift_alarms": sum(1 for _, r in input_reports if r.verdict == "drift"),
            }
        )

    def summary(rows: list[dict[str, object]], key: str) -> dict[str, float | int | None]:
        values = [r[key] for r in rows if r[key] is not None]
        return {
            "detected": f"{len(values)}/{len(rows)}",
            "median": statistics.median(values) if values else None,
            "max": max(values) if values else None,
        }

    stationary_events = len(seeds) * EVENTS
    return {
        "events_per_stream": EVENTS,
        "change_at": CHANGE_AT,
        "window": WINDOW,
        "partitions": PARTITIONS,
        "outcome_window": OUTCOME_WINDOW,
        "seeds": seeds,
        "stationary": stationary,
        "false_alarms_per_100k_events": {
            k: round(sum(r[k] for r in stationary) / stationary_events * 1e5, 2)
            for k in ("window_alarms", "detector_alarms", "loss_alarms")
        },
        "feature_shift": feature,
        "feature_shift_delay": {
            "detector": summary(feature, "detector_delay"),
            "window": summary(feature, "window_delay"),
        },
        "concept_change": concept,
        "concept_change_delay": {"loss_detector_outcomes": summary(concept, "loss_alarm_delay")},
        "monitor_us_per_event": round(statistics.median(costs), 2),
    }


def plot(model: LoadedModel, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monitor_window = 1_000
    data = _stream(model, 1, CHANGE_AT, "feature")
    x, scores, _, parts, times, offsets = data
    monitor = DriftMonitor(model.card, window=monitor_window, partitions=PARTITIONS)
    windows, alarms = [], []
    for i in range(0, EVENTS, BATCH):
        j = slice(i, i + BATCH)
        for r in monitor.update(x[j], scores[j], parts[j], times[j], offsets[j]):
            (windows if r.kind == "window" else alarms).append((i + BATCH, r))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for name in ("salary", "loan", "age", "score"):
        top.plot(
            [n for n, _ in windows], [r.psi[name] for _, r in windows], marker="o", ms=3, label=f"PSI {name}"
        )
    top.plot(
        [n for n, _ in windows],
        [r.distance["salary"] for _, r in windows],
        ls="--",
        label="KS distance salary",
    )
    top.axhline(0.25, color="grey", ls=":", label="PSI alarm level 0.25")
    top.axvline(CHANGE_AT, color="red", label="salary x1.6, loan x0.5 from here")
    for n, _ in alarms:
        top.axvline(n, color="orange", ls="--", lw=1)
    if alarms:
        text = ", ".join(f"{', '.join(r.alarms)} +{n - CHANGE_AT}" for n, r in alarms)
        top.annotate(f"Page-Hinkley alarms: {text} events", (alarms[-1][0] + 200, 5.0), fontsize=8)
    top.set_yscale("log")
    top.set_ylim(3e-3, 30)
    top.set_ylabel("statistic per 1,000-event window")
    top.set_title("Feature shift: PSI and KS per window, detector alarms (seed 1)")
    top.legend(fontsize=8, loc="upper left")

    alarms_c, curve = _performance(_stream(model, 1, CHANGE_AT, "concept"))
    bottom.plot([c[0] for c in curve], [c[1] for c in curve], label="rolling accuracy")
    bottom.plot([c[0] for c in curve], [c[2] for c in curve], label="rolling log loss")
    bottom.axvline(CHANGE_AT, color="red", label="concept changes here (labels follow another rule)")
    for n in alarms_c:
        bottom.axvline(n, color="orange", ls="--", lw=1)
    if alarms_c:
        bottom.annotate(
            f"ADWIN on the loss: +{alarms_c[0] - CHANGE_AT} outcomes", (alarms_c[0], 0.5), fontsize=8
        )
    bottom.set_xlabel("events (outcomes) since the start")
    bottom.set_ylabel(f"over the last {OUTCOME_WINDOW:,} outcomes")
    bottom.set_title("Concept change: performance on true outcomes")
    bottom.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 1..N")
    args = parser.parse_args()
    model = load(ROOT / "models", "loan-approval")
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        **measure(model, list(range(1, args.seeds + 1))),
    }
    out = ROOT / "bench" / "results" / f"drift-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(model, ROOT / "docs" / "drift.png")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))
    print(f"wrote {out.relative_to(ROOT)} and docs/drift.png")


if __name__ == "__main__":
    main()
