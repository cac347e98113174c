"""A/B runs: variants of one scorer, interleaved, each draining the same backlog on fresh topics.

``python -m bench.ab [--rung NAME] [--repeat N] [--backlog N] NAME:KEY=VALUE,... NAME:...``: each
variant is the rung's command with those extra environment variables; rounds run every variant
once, in turn, so that load from other work on the machine spreads over all of them. Prints the
events per second and CPU per 1,000 events of each run, the medians, and each variant's ratio to
the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import replace

from bench.harness import Harness
from bench.ladder import RUNGS
from bench.load import Pool
from stream.tools.broker import EmbeddedKafka


def _variant(spec: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    name, _, assignments = spec.partition(":")
    pairs = [a.split("=", 1) for a in assignments.split(",") if a]
    return name, tuple((k, v) for k, v in pairs)


def compare(
    bootstrap: str, rung_name: str, variants: list[str], repeat: int, backlog: int
) -> dict[str, object]:
    """Interleaved saturation runs of each variant of the rung named ``rung_name``; medians and ratios."""
    rung = next(r for r in RUNGS if rung_name in r.name)
    pool = Pool.generate(20_000)
    runs: dict[str, list[dict[str, object]]] = {}
    for round_ in range(repeat):
        for spec in variants:
            name, env = _variant(spec)
            with Harness(bootstrap, replace(rung, settings=rung.settings + env), pool) as h:
                h.warm_up()
                sat = h.drain(backlog, timeout=max(60.0, backlog / 500))
            runs.setdefault(name, []).append(sat)
            print(f"round {round_ + 1} {name}: {sat}", flush=True)
    summary: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        summary[name] = {
            "events_per_s": statistics.median(float(r["events_per_s"]) for r in results),  # type: ignore[arg-type]
            "cpu_s_per_1000": statistics.median(float(r["cpu_s_per_1000"]) for r in results),  # type: ignore[arg-type]
        }
    first = summary[next(iter(summary))]
    for s in summary.values():
        s["throughput_ratio"] = round(s["events_per_s"] / first["events_per_s"], 2)
        s["cpu_ratio"] = round(s["cpu_s_per_1000"] / first["cpu_s_per_1000"], 2)
    return {"rung": rung.name, "repeat": repeat, "backlog": backlog, "runs": runs, "median": summary}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab")
    parser.add_argument("variants", nargs="+", help="NAME:KEY=VALUE,... (environment of the variant)")
    parser.add_argument("--rung", default="streamscore, 1 process")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=100_000, help="events drained per run")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        report = compare(bootstrap, args.rung, args.variants, args.repeat, args.backlog)
    else:
        with EmbeddedKafka() as kafka:
            report = compare(kafka.bootstrap_servers, args.rung, args.variants, args.repeat, args.backlog)
    print(json.dumps(report["median"], indent=1))


if __name__ == "__main__":
    main()
