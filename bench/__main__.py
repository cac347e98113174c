"""``make bench``: run the benchmarks, write ``bench/results/<date>.json`` and ``<date>.png``.

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set, else an embedded broker started for the run (it shares
the machine's cores with the scorers: the results say so). ``--only memory`` runs only the
10-minute memory run (:mod:`bench.memory`) and adds it to that day's results. When a rung in a
registered format (Avro, JSON Schema, Protobuf) is chosen, ``STREAMSCORE_SCHEMA_REGISTRY_URL`` is
its schema registry when set, else Apicurio Registry (``make registry``) started for the run on
loopback and stopped by its pid at the end. Before the ladder, in process: the micro-benchmarks,
the wire formats (:mod:`bench.formats`), what a producer's new schema version costs the decoders
(:mod:`bench.evolution`) and the kinds of model with a large reference's import (:mod:`bench.models`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

from bench import (
    broker_startup,
    estimation,
    evolution,
    formats,
    ladder,
    memory,
    micro,
    models,
    summary,
    warm_up,
)
from stream.errors import StreamscoreError
from stream.tools.broker import KAFKA_VERSION, BrokerError, EmbeddedKafka

RESULTS = Path(__file__).parent / "results"
IN_PROCESS = (("micro", micro), ("formats", formats), ("evolution", evolution), ("estimation", estimation))
"""Measured in process before the ladder: the hot path's pieces, events/s per wire format, what a
producer's new schema version costs, estimated against realised accuracy on the demo's drifts."""


def machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = [r for r in report["ladder"]["rungs"] if "events_per_s" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = [r["rung"] for r in rungs]
    left.barh(names, [r["events_per_s"] for r in rungs], color="#4c72b0")
    for i, r in enumerate(rungs):
        share = f" ({r['ratio_to_limit']:.0%})" if "ratio_to_limit" in r else ""
        left.text(r["events_per_s"], i, f" {r['events_per_s']:,}/s{share}", va="center")
    left.invert_yaxis()
    left.set_xlabel("events per second draining a backlog (share of the passthrough limit)")
    valid = report["ladder"].get("valid")
    left.set_title("Throughput" if valid else "Throughput: INVALID RUN (the limit is not the fastest rung)")
    for r in rungs:
        points = sorted((p["offered"], p["read_p99_ms"]) for p in r["latency"] if p.get("read_p99_ms"))
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=r["rung"])
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("offered events/s (the same rates for all, and fractions of each maximum)")
    right.set_ylabel("p99 occurred_at -> a consumer's read, ms")
    right.set_title("End-to-end latency (p99), against the offered rate")
    right.legend(fontsize=8)
    where = report["machine"]
    fig.suptitle(
        f"streamscore ladder, {report['date'][:10]}, {where['cpus']} cores {where['cpu']}"
        + ("" if valid else " - INVALID")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)


@contextlib.contextmanager
def schema_registry(needed: bool) -> Iterator[tuple[str | None, str]]:
    """(the registry's URL, or None and why) for the block.

    ``STREAMSCORE_SCHEMA_REGISTRY_URL`` when set; otherwise, if ``needed``, Apicurio Registry on
    loopback (in-memory), stopped by its pid when the block ends. One that cannot be fetched or
    started is not fatal: the rungs that need it record why.
    """
    given = os.environ.get("STREAMSCORE_SCHEMA_REGISTRY_URL")
    if given or not needed:
        yield given, "no registered format chosen"
        return
    from stream.tools.apicurio import Apicurio

    registry = Apicurio()
    try:
        registry.start()
    except (BrokerError, OSError) as exc:  # no java or mvn, not cached and not fetchable, no answer
        print(f"   no schema registry: {exc}", flush=True)
        yield None, str(exc)
        return
    print(f"   Apicurio Registry {registry.version} on {registry.url} (pid {registry.pid})", flush=True)
    try:
        yield registry.url, ""
    finally:
        registry.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--quick", action="store_true", help="about two minutes: 3 s drains, one offered rate, fewer rungs"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        help="ladder rungs by key (quix, streamscore, streamscore-avro...) or by a part of their name, "
        "or memory",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the chosen rungs this many times in turn; the ratios are the rounds' medians",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the memory run")
    parser.add_argument(
        "--rate",
        type=float,
        help="events/s of the memory run (default: half the day's measured maximum for one process)",
    )
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    if args.only == ["memory"]:
        memory_only(now, args.minutes, args.rate)
        return
    report: dict[str, object] = {"date": now.isoformat(timespec="seconds"), "machine": machine()}
    started = time.monotonic()
    for name, part in IN_PROCESS:
        report[name] = part.run(quick=args.quick)
        print(json.dumps(report[name], indent=1), flush=True)
    try:  # events/s per kind of model (one tensor, one input per column), a large import's seconds
        report["models"] = models.run(quick=args.quick)
    except (RuntimeError, StreamscoreError) as exc:  # the zoo's models cannot be built or imported
        report["models"] = {"error": str(exc)}
    print(json.dumps(report["models"], indent=1), flush=True)
    if not args.quick:
        report["broker"] = broker_startup.run(repeats=3)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    registered = any(r.registered for r in ladder.chosen(args.quick, args.only))
    with contextlib.ExitStack() as stack:
        if bootstrap:
            report["broker_under_test"] = bootstrap
        else:
            bootstrap = stack.enter_context(EmbeddedKafka(full_jit=True)).bootstrap_servers
            report["broker_under_test"] = (
                f"embedded Apache Kafka {KAFKA_VERSION} on the same machine (JIT: C1 and C2), warmed up "
                f"for {warm_up.run(bootstrap)} s"
            )
        url, why = stack.enter_context(schema_registry(registered))
        if registered:
            report["schema_registry"] = url or f"none: {why}"
        report["ladder"] = ladder.run(
            bootstrap, quick=args.quick, only=args.only, registry=url, no_registry=why, rounds=args.rounds
        )
    report["seconds"] = round(time.monotonic() - started)
    written(report, _stem(now, args.quick))


def _stem(now: dt.datetime, quick: bool) -> str:
    """``<date>`` (``-quick``), or ``<date>-HHMM`` when the day already has a ladder: it stays."""
    stem = f"{now:%Y-%m-%d}" + ("-quick" if quick else "")
    earlier = RESULTS / f"{stem}.json"
    if earlier.exists() and "ladder" in json.loads(earlier.read_text()):
        stem += f"-{now:%H%M}"
    return stem


def written(report: dict, stem: str) -> None:
    """The report and its chart as ``bench/results/<stem>.json`` and ``.png``; the latency table printed."""
    RESULTS.mkdir(exist_ok=True)
    previous = RESULTS / f"{stem}.json"
    if previous.exists() and "memory" in (kept := json.loads(previous.read_text())):
        report["memory"] = kept["memory"]  # the day's memory run stays beside the new ladder
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    chart(report, RESULTS / f"{stem}.png")
    if table := summary.latency_text(report["ladder"].get("latency_table", [])):
        print(table)
    print(f"written {RESULTS / stem}.json and .png in {report['seconds']} s")


def memory_only(now: dt.datetime, minutes: float, rate: float | None) -> None:
    """The memory run alone, added to the day's results (a file of its own if there are none).

    Without ``rate``, at half the events/s one process drained in the day's ladder (2,000/s if none).
    """
    path = RESULTS / f"{now:%Y-%m-%d}.json"
    report = json.loads(path.read_text()) if path.exists() else {"machine": machine()}
    if rate is None:
        rungs = report.get("ladder", {}).get("rungs", [])
        best = [r["events_per_s"] for r in rungs if r.get("key") == "streamscore" and "events_per_s" in r]
        rate = best[0] / 2 if best else 2_000.0
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        report["memory"] = memory.run(bootstrap, minutes, rate)
    else:
        with EmbeddedKafka() as kafka:
            report["memory"] = memory.run(kafka.bootstrap_servers, minutes, rate)
    report["memory"]["date"] = now.isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report["memory"].items() if k != "samples"}, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
