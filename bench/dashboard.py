"""``make dashboard``: the Grafana dashboard's panels drawn from real metrics into docs/dashboard.png.

Runs a broker (embedded unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), a worker, Debian's Prometheus
scraping it every second, and a producer whose rate steps up and then stops while the worker is
paused (so lag shows); then asks Prometheus for every panel's PromQL over the run and plots it.
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


def main() -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        sys.exit("needs Debian's prometheus: apt-get install prometheus")
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-"))
    metrics_port, prom_port = free_port(), free_port()
    with kafka_at(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")) as bootstrap:
        run = f"dashboard-{int(time.time())}"  # topics of its own: no earlier events in the picture
        settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            app_id=run,
            input_topic=f"{run}.events",
            prediction_topic=f"{run}.predictions",
            provenance_topic=f"{run}.provenance",
            dlq_topic=f"{run}.dlq",
        )
        env = {
            **with_secret(os.environ),  # a random secret per run unless one is set
            **{
                f"STREAMSCORE_{k.upper()}": str(v)
                for k, v in settings.model_dump().items()
                if k.endswith("topic")
            },
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMSCORE_APP_ID": settings.app_id,
            "STREAMSCORE_METRICS_PORT": str(metrics_port),
            "STREAMSCORE_DATA_DIR": str(tmp / "worker"),
        }
        kafka = client_config(settings)
        prepare_topics(settings)
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: streamscore\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
        )
        prom_args = [
            prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]  # fmt: skip
        worker_args = [sys.executable, "-m", "stream.cli.main", "worker"]
        with _process(prom_args), _process(worker_args, env) as worker:
            _wait_for_group(kafka, settings.app_id)
            start = time.time()
            for rate in (200, 400, 700):  # steps up (one Python producer tops out near 800/s)
                produce(kafka, settings.input_topic, rate=rate, duration=25, malformed_fraction=0.02)
            worker.send_signal(signal.SIGSTOP)  # a stalled worker: lag builds up
            produce(kafka, settings.input_topic, rate=600, duration=20, malformed_fraction=0.02)
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


def plot(panels: list[dict], data: list, start: float) -> None:
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
        for legend, results in series:
            for r in results:
                xs = [float(t) - start for t, _ in r["values"]]
                ys = [float(v) for _, v in r["values"]]
                ax.plot(xs, ys, label=_legend(legend, r["metric"]), linewidth=1)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
        if ax.lines and len(ax.lines) <= 8:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        "streamscore dashboard panels, from a real run (rate steps 200/400/700 events/s, worker paused 20 s)"
    )
    fig.tight_layout()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=80)


if __name__ == "__main__":
    main()
