"""The benchmark ladder: every scorer on the same broker, machine and events, in one run.

Each rung's processes are started once (:mod:`bench.harness`) and, in turn:

1. answer a first event (warm-up: started, joined the group, model loaded);
2. drain backlogs, from :attr:`Plan.first_probe` events, each sized from the rate of the one
   before (:func:`bench.measure.next_backlog`), until one lasts :attr:`Plan.drain_seconds` in
   its measured middle (or reaches :attr:`Plan.largest` events): that drain gives the rung's
   events/s and CPU seconds per 1,000 events, over the middle 80% of the drain;
3. take offered loads at fractions of that rate and at the same absolute rates for every rung
   (:data:`bench.latency.RATES`, those it can sustain): the time from each event's ``occurred_at``
   to its prediction's append and to a downstream consumer's read, the rate the load generator
   achieved, and the cores busy meanwhile; the load generator stamps each event's send time in the
   rung's input format.

The first rung, the latency floor, is a bare loop that sends each event on as soon as it arrives:
the latency Kafka itself sets on the machine, which the summary's latency table sets every rung
against (:func:`bench.summary.latency_table`). The passthrough stays the limit of throughput.

The rungs in a registered format (Avro, JSON Schema, Protobuf: input and output) need a schema registry,
given to :func:`run` as a URL; without one they record an error and the ladder goes on. The rungs
of :data:`IMPORTED` serve a model of the zoo (one input per column, two string features), imported
into a registry for the run, on events carrying its features (:func:`prepared`).

The outcome worker's rung (:mod:`bench.outcomes`) follows: its joins/s per process against the
scorer's events/s per process, measured again in the same run, its memory with 10 million pending
predictions, and its recovery after SIGKILL. The run is then judged (:mod:`bench.summary`): the
limit must be the fastest rung and every rung must have scored every event, right; otherwise the
run says it is invalid and gives no ratios.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import measure, models, outcomes, summary
from bench.harness import ROOT, Harness, Rung
from bench.latency import RATES, offers
from bench.load import Pool
from stream.errors import StreamscoreError
from stream.scoring.model import load_folder

QUIX_PYTHON = str(ROOT / ".venv-quix" / "bin" / "python")
WORKER = [sys.executable, "-m", "stream.cli.main", "worker"]
RUNGS = [
    Rung("0 latency floor", "floor", [sys.executable, "-m", "bench.rungs", "floor"]),
    Rung("1 passthrough (limit)", "passthrough", [sys.executable, "-m", "bench.rungs", "passthrough"]),
    Rung("2 bare loop + real work", "bare", [sys.executable, "-m", "bench.rungs", "bare"]),
    Rung("3 naive Faust scorer", "naive", [sys.executable, "-m", "bench.rungs", "naive"]),
    Rung("4 Quix Streams scorer", "quix", [QUIX_PYTHON, "-W", "ignore", "bench/quix_peer.py"]),
    Rung("5 streamscore, 1 process", "streamscore", WORKER),
    Rung(
        "5 streamscore, 1 process, Avro",
        "streamscore-avro",
        WORKER,
        settings=(("STREAMSCORE_INPUT_FORMAT", "avro"), ("STREAMSCORE_OUTPUT_FORMAT", "avro")),
    ),
    Rung(
        "5 streamscore, 1 process, JSON Schema",
        "streamscore-json-schema",
        WORKER,
        settings=(("STREAMSCORE_INPUT_FORMAT", "json-schema"), ("STREAMSCORE_OUTPUT_FORMAT", "json-schema")),
    ),
    Rung(
        "5 streamscore, 1 process, Protobuf",
        "streamscore-protobuf",
        WORKER,
        settings=(("STREAMSCORE_INPUT_FORMAT", "protobuf"), ("STREAMSCORE_OUTPUT_FORMAT", "protobuf")),
    ),
    Rung(
        "5 streamscore, 1 process, drift off",
        "streamscore-drift-off",
        WORKER,
        settings=(("STREAMSCORE_DRIFT_WINDOW", "0"),),
        quick=False,
    ),
    Rung(
        "5 streamscore, 1 process, shadow challenger",
        "streamscore-shadow",
        WORKER,
        settings=(("STREAMSCORE_CHALLENGER_URI", str(ROOT / "models" / "loan-approval" / "1")),),
        quick=False,
    ),
    Rung(
        "5 streamscore, 1 process, 3 reason codes",
        "streamscore-reasons",
        WORKER,
        settings=(("STREAMSCORE_REASONS", "3"),),
        quick=False,
    ),
    Rung("5 streamscore, 1 process, one input per column, 2 strings", "streamscore-columns", WORKER),
    Rung("5 streamscore, 2 processes", "streamscore-2", WORKER, processes=2),
    Rung(
        "5 streamscore, exactly once",
        "streamscore-eos",
        WORKER,
        settings=(("STREAMSCORE_PROCESSING_GUARANTEE", "exactly_once"),),
    ),
]
#: Rungs that serve one of the zoo's models (:mod:`bench.models`) instead of the demo's, on its events.
IMPORTED = {"streamscore-columns": "columns"}
POOL = 20_000
"""Events in a rung's pool (written again and again as its backlogs)."""


@dataclass(frozen=True)
class Plan:
    drain_seconds: float  # least length of a drain's measured middle
    probe_seconds: float  # a drain this long gives a rate to size the next backlog from
    latency_seconds: float
    fractions: tuple[float, ...] = (0.25, 0.5, 0.7)  # of the rung's own maximum
    rates: tuple[float, ...] = RATES  # events/s offered to every rung that can sustain them
    first_probe: int = 2_000
    smallest: int = 5_000
    largest: int = 2_000_000  # events in one backlog (written while the scorer is stopped)


FULL = Plan(drain_seconds=10.0, probe_seconds=1.0, latency_seconds=8.0)
QUICK = Plan(
    drain_seconds=3.0,
    probe_seconds=0.5,
    latency_seconds=2.5,
    fractions=(0.5,),
    rates=(1_000,),
    largest=700_000,
)


def chosen(quick: bool = False, only: list[str] | None = None) -> list[Rung]:
    """The rungs a run measures: those ``only`` names, else the plan's.

    An entry of ``only`` that is a rung's key selects that rung alone (``streamscore`` is the JSON
    one-process rung); any other entry, the rungs whose name contains it. Entries may be joined by commas.
    """
    only = [part for entry in only or () for part in entry.split(",") if part]
    if not only:
        return [r for r in RUNGS if r.quick or not quick]
    keys = {r.key for r in RUNGS}
    return [r for r in RUNGS if any(o == r.key if o in keys else o in r.name for o in only)]


Prepared = tuple[Pool, tuple[tuple[str, str], ...]]
"""A model's events, and the settings that serve the model."""


def prepared(rung: Rung, folder: Path, pools: dict[str, Prepared]) -> tuple[Rung, Pool]:
    """The rung with the settings of its model, and its events (each model's made once, under
    ``folder``, and kept in ``pools``): the demo's, or a zoo model imported into a registry."""
    kind = IMPORTED.get(rung.key, "")
    if kind not in pools:
        if kind:
            version, _ = models.imported(kind, folder)
            model = load_folder(version)
            pool = Pool.scored(model, models.zoo_events(POOL, model.feature_names, seed=5))
            settings = (
                ("STREAMSCORE_MODEL_DIR", str(version.parent.parent)),
                ("STREAMSCORE_MODEL_NAME", version.parent.name),
                ("STREAMSCORE_MODEL_VERSION", version.name),
            )
        else:
            pool, settings = Pool.generate(POOL), ()
        pools[kind] = (pool, settings)
    pool, settings = pools[kind]
    return dataclasses.replace(rung, settings=settings + rung.settings), pool


def measure_rung(
    bootstrap: str, rung: Rung, plan: Plan, pool: Pool, registry: str | None = None
) -> dict[str, object]:
    started = time.monotonic()
    with Harness(bootstrap, rung, pool, registry) as harness:
        harness.warm_up()
        size: int | None = plan.first_probe
        rounds = []
        while size is not None:
            timeout = max(60.0, 5 * size / float(rounds[-1]["events_per_s"])) if rounds else 120.0  # type: ignore[arg-type]
            sat = harness.drain(size, timeout)
            rounds.append({k: sat[k] for k in ("events", "events_per_s", "drain_s", "measured_s")})
            size = measure.next_backlog(
                size,
                float(sat["events_per_s"]),  # type: ignore[arg-type]
                float(sat["drain_s"]),  # type: ignore[arg-type]
                float(sat["measured_s"]),  # type: ignore[arg-type]
                wanted_s=plan.drain_seconds,
                probe_s=plan.probe_seconds,
                largest=plan.largest,
            )
        print(f"   backlogs {rounds[:-1]}\n   saturation {sat}", flush=True)
        maximum = float(sat["events_per_s"])  # type: ignore[arg-type]
        latencies = latency_points(harness, plan, maximum)
        rss = harness.peak_rss_mib()
    return {
        "rung": rung.name,
        "key": rung.key,
        **sat,
        "rounds": rounds[:-1],
        "peak_rss_mib": rss,
        "latency": latencies,
        "seconds": round(time.monotonic() - started),
    }


def latency_points(harness: Harness, plan: Plan, maximum: float) -> list[dict[str, object]]:
    """The rung's latency at the plan's fractions of its ``maximum`` and at the plan's rates it can
    sustain (the others recorded as skipped)."""
    points = []
    for label, rate in offers(maximum, plan.rates, plan.fractions):
        point = label if rate is None else {**label, **harness.latency(rate, plan.latency_seconds)[0]}
        points.append(point)
        print(f"   latency {point}", flush=True)
    return points


def warnings(plan: Plan, rungs: list[dict[str, object]]) -> list[str]:
    """What weakens the run without invalidating it: short drains, a generator that fell behind."""
    found = [
        f"{r['rung']}: measured over {r['measured_s']} s (backlog bounded at {plan.largest:,} events)"
        for r in rungs
        if "measured_s" in r and float(r["measured_s"]) < plan.drain_seconds  # type: ignore[arg-type]
    ]
    found += [
        f"{r['rung']}: the load generator achieved {p.get('achieved')} of {p.get('offered')} events/s offered"
        for r in rungs
        for p in r.get("latency", [])  # type: ignore[union-attr]
        if "skipped" not in p and not p.get("generator_kept_up")
    ]
    return found


def run(
    bootstrap: str,
    quick: bool = False,
    only: list[str] | None = None,
    registry: str | None = None,
    no_registry: str = "no schema registry given",
    rounds: int = 1,
) -> dict[str, object]:
    """The chosen rungs, measured and judged; ``registry`` is the schema registry's URL (``no_registry``
    says why there is none: the registered formats' rungs record it as their error).

    With ``rounds`` above 1 the chosen rungs are measured that many times in turn (A B C A B C ...),
    each result marked with its ``round``: a machine whose speed changes during the run then
    weighs on every rung alike, and the ratios are the medians of each round's own.
    """
    plan = QUICK if quick else FULL
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        pools: dict[str, Prepared] = {}
        for round_ in range(1, rounds + 1):
            for rung in chosen(quick, only):
                which = f" (round {round_} of {rounds})" if rounds > 1 else ""
                print(f"-- {rung.name}{which}", flush=True)
                try:
                    if rung.registered and registry is None:
                        raise RuntimeError(f"no schema registry: {no_registry}")
                    served, pool = prepared(rung, Path(folder), pools)
                    result = measure_rung(bootstrap, served, plan, pool, registry)
                except (
                    RuntimeError,
                    OSError,
                    StreamscoreError,
                ) as exc:  # OSError: no .venv-quix (make quix-venv)
                    result = {"rung": rung.name, "key": rung.key, "error": str(exc)}
                    print(f"   {exc}", flush=True)
                results.append(result | ({"round": round_} if rounds > 1 else {}))
    report: dict[str, object] = {"plan": dataclasses.asdict(plan), "rungs": results}
    if not only or "outcomes" in only:  # the outcome worker's rung: joins/s against the scorer's events/s
        try:
            report["outcomes"] = outcomes.run(bootstrap, quick)
        except (RuntimeError, OSError) as exc:
            report["outcomes"] = {"error": str(exc)}
            print(f"   {exc}", flush=True)
    report["warnings"] = warnings(plan, results)
    report["latency_table"] = summary.latency_table(results)  # every rung against the floor, same rates
    problems = summary.problems(results)
    report["valid"] = not problems
    if problems:
        report["invalid"] = problems
        print("THE LADDER IS INVALID, no ratios given:\n  " + "\n  ".join(problems), flush=True)
    else:
        summary.to_limit(results)
        report["ratios"] = summary.ratios(results)
        if rounds > 1:
            report["ratios_by_round"] = summary.by_round(results)
        print(f"   ratios {report['ratios']}", flush=True)
    for w in report["warnings"]:  # type: ignore[attr-defined]
        print(f"   warning: {w}", flush=True)
    return report
