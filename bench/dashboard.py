"""``make dashboard``: the Grafana dashboard's panels drawn from real metrics into docs/dashboard.png.

Runs a broker (embedded unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), a worker serving a model whose
card has a calibration, the outcome worker, Debian's Prometheus scraping both every second, and a
producer (each event's outcome 2 s later) whose rate steps up and then stops while the worker is
paused (so lag shows), the applicants sent meanwhile of the ages where the model is least sure
(``--drift-kind age``: its estimated performance falls, and the realised one after it); then asks
Prometheus for every panel's PromQL over the run and plots it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream.kafka.config import client_config
from stream.kafka.topics import prepare_topics
from stream.keys import with_secret
from stream.settings import Settings
from stream.tools.broker import free_port
from stream.tools.demo import _wait_for_group, kafka_at
from stream.tools.produce import produce

ROOT = Path(__file__).parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamscore.json"
OUT = ROOT / "docs" / "dashboard.png"
DRIFT_WINDOW = 2_000  # a window report (and an estimate) every 2,000 events


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def _range(port: int, expr: str, start: float, end: float) -> list[dict]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 2})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range?{query}", timeout=10) as r:
        return json.loads(r.read())["data"]["result"]


def _legend(template: str, labels: dict[str, str]) -> str:
    for k, v in labels.items():
        template = template.replace("{{" + k + "}}", v)
    return template or ", ".join(f"{k}={v[:12]}" for k, v in labels.items() if k not in ("__name__", "job"))


def _environments(settings: Settings, tmp: Path, ports: tuple[int, int]) -> tuple[dict, dict]:
    """The scoring worker's and the outcome worker's environments (metrics on ``ports``)."""
    env = {
        **with_secret(os.environ),  # a random secret per run unless one is set
        **{
            f"STREAMSCORE_{k.upper()}": str(v)
            for k, v in settings.model_dump().items()
            if k.endswith("topic")
        },
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "STREAMSCORE_APP_ID": settings.app_id,
        "STREAMSCORE_DRIFT_WINDOW": str(DRIFT_WINDOW),
    }
    worker = {**env, "STREAMSCORE_METRICS_PORT": str(ports[0]), "STREAMSCORE_DATA_DIR": str(tmp / "worker")}
    judge = {**env, "STREAMSCORE_METRICS_PORT": str(ports[1]), "STREAMSCORE_DATA_DIR": str(tmp / "outcomes")}
    return worker, judge


def _prometheus(tmp: Path, port: int, targets: list[int]) -> list[str]:
    """Debian's Prometheus scraping ``targets`` every second, listening on ``port``."""
    listed = ", ".join(f"'127.0.0.1:{t}'" for t in targets)
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: streamscore\n"
        f"    static_configs: [{{targets: [{listed}]}}]\n"
    )
    return [
        shutil.which("prometheus") or "prometheus", f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip


def main() -> None:
    if shutil.which("prometheus") is None:
        sys.exit("needs Debian's prometheus: apt-get install prometheus")
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-"))
    metrics_port, judge_port, prom_port = free_port(), free_port(), free_port()
    with kafka_at(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")) as bootstrap:
        run = f"dashboard-{int(time.time())}"  # topics of its own: no earlier events in the picture
        settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            app_id=run,
            input_topic=f"{run}.events",
            **{f"{t}_topic": f"{run}.{t}s" for t in ("prediction", "outcome")},
            **{f"{t}_topic": f"{run}.{t}" for t in ("provenance", "drift", "dlq")},
        )
        worker_env, judge_env = _environments(settings, tmp, (metrics_port, judge_port))
        kafka = client_config(settings)
        prepare_topics(settings)
        prom_args = _prometheus(tmp, prom_port, [metrics_port, judge_port])
        worker_args = [sys.executable, "-m", "stream.cli.main", "worker"]
        judge_args = [sys.executable, "-m", "stream.cli.main", "outcomes"]
        with (
            _process(prom_args),
            _process(judge_args, judge_env),
            _process(worker_args, worker_env) as worker,
        ):
            _wait_for_group(kafka, settings.app_id)
            _wait_for_group(kafka, f"{settings.app_id}-outcomes")
            start = time.time()
            traffic = {
                "outcome_topic": settings.outcome_topic,
                "outcome_delay": 2.0,
                "malformed_fraction": 0.02,
            }
            for seed, rate in enumerate((200, 400, 700)):  # steps up (a Python producer tops out near 800/s)
                produce(kafka, settings.input_topic, rate=rate, duration=25, seed=seed, **traffic)
            worker.send_signal(signal.SIGSTOP)  # a stalled worker: lag builds up
            produce(
                kafka,
                settings.input_topic,
                rate=600,
                duration=20,
                seed=3,
                drift_at=0,
                drift_kind="age",
                **traffic,
            )
            worker.send_signal(signal.SIGCONT)  # recovers and drains
            time.sleep(25)
            end = time.time()
            panels = json.loads(DASHBOARD.read_text())["panels"]
            data = [
                [(t["legendFormat"], _range(prom_port, t["expr"], start, end)) for t in p["targets"]]
                for p in panels
            ]
    plot(panels, data, start)
    print(f"written {OUT}")


def _styles(panel: dict) -> dict[str, dict]:
    """Each series' drawing, by display name, from the panel's overrides: hidden lines, a band filled
    down to another series, points, dashes."""
    styles: dict[str, dict] = {}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        style = styles.setdefault(override["matcher"]["options"], {})
        for p in override["properties"]:
            key = p["id"].removeprefix("custom.")
            style[key] = p["value"]
    return styles


def _draw(ax: Any, series: list, styles: dict[str, dict], start: float) -> None:
    """Draw a time series panel's series on ``ax``: lines, points, dashes, and bands."""
    drawn: dict[str, tuple[list[float], list[float]]] = {}
    for legend, results in series:
        for r in results:
            xs = [float(t) - start for t, _ in r["values"]]
            ys = [float(v) for _, v in r["values"]]
            name = _legend(legend, r["metric"])
            drawn[name] = (xs, ys)
            style = styles.get(name, {})
            if style.get("lineWidth") == 0:
                continue  # a band's edge: drawn as the band
            if style.get("drawStyle") == "points":
                ax.plot(xs, ys, "o", markersize=3, label=name)
            else:
                ax.plot(xs, ys, "--" if "lineStyle" in style else "-", label=name, linewidth=1)
    for name, style in styles.items():
        other = style.get("fillBelowTo")
        if other and name in drawn and other in drawn:
            upper, lower = dict(zip(*drawn[name], strict=True)), dict(zip(*drawn[other], strict=True))
            xs = sorted(upper.keys() & lower.keys())
            band = name.removeprefix("upper ")
            ax.fill_between(
                xs, [lower[x] for x in xs], [upper[x] for x in xs], alpha=0.2, label=f"95% {band}"
            )


def plot(panels: list[dict], data: list, start: float, out: Path = OUT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 3.2 * rows))
    for ax, panel, series in zip(axes.flat, panels, data, strict=False):
        ax.set_title(panel["title"], fontsize=10)
        if panel["type"] == "table":
            ax.axis("off")
            cells = [
                [r["metric"].get(k, "")[:16] for k in ("name", "version", "sha256")]
                for _, res in series
                for r in res
            ]
            if cells:
                ax.table(cellText=cells, colLabels=["name", "version", "sha256"], loc="center")
            continue
        _draw(ax, series, _styles(panel), start)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
        if ax.lines and len(ax.lines) <= 8:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        "streamscore dashboard panels, from a real run (rate steps 200/400/700 events/s, worker paused 20 s "
        "while applicants move to the ages where the model is least sure)"
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the title above
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main()
