"""The results page, generated at build time from every ``bench/results/*.json``.

Each document is recognised by its shape: a benchmark run (``ladder``, with the micro-benchmarks,
the broker's start-up, formats and models in process and the memory run beside it), an outcome-worker run
(``join`` or ``memory`` without a ladder), a fault-injection run (``results`` of scenarios) or a
drift measurement (``feature_shift_delay``). A section shared by several documents (a memory run
copied into later ones) is shown once, under the first. Runs are listed newest first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})(?:-(\d{4}))?")
CHART_NOTE = "chart of the run"


@dataclass
class Run:
    """One results document: its file, when it ran (as far as it says), and its content."""

    path: Path
    doc: dict[str, Any]
    when: str = field(init=False)

    def __post_init__(self) -> None:
        date = str(self.doc.get("date", ""))
        stamp = STAMP.search(self.path.stem)
        if "T" in date:  # an ISO time: the run's own clock
            self.when = date[:16].replace("T", " ") + " UTC"
        elif stamp and stamp.group(2):
            hhmm = stamp.group(2)
            self.when = f"{stamp.group(1)} {hhmm[:2]}:{hhmm[2:]} UTC"
        else:
            self.when = f"{date or (stamp.group(1) if stamp else '?')} (time not recorded)"

    @property
    def order(self) -> tuple[str, str]:
        """Sort key: by time; a run of unknown time sorts before the timed runs of its day."""
        return self.when[:16].replace("(", "!"), self.path.name

    @property
    def kind(self) -> str:
        """ladder, outcomes, faults, drift, or other."""
        d = self.doc
        if "ladder" in d:
            return "ladder"
        if isinstance(d.get("results"), list) and all("scenario" in r for r in d["results"]):
            return "faults"
        if "feature_shift_delay" in d:
            return "drift"
        if "join" in d or "memory" in d:
            return "outcomes"
        return "other"


def load(folder: Path) -> list[Run]:
    """Every results document in ``folder``, newest first."""
    runs = [Run(p, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    return sorted(runs, key=lambda r: r.order, reverse=True)


def num(value: Any, digits: int | None = None) -> str:
    """A figure as the prose writes it: thousands separated, ``-`` when absent."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if digits is not None:
            return f"{value:,.{digits}f}"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"
    return str(value).replace("|", "\\|")


def table(head: list[str], rows: Iterable[list[str]], right: int = 1) -> list[str]:
    """A Markdown table; columns from ``right`` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def machine(doc: dict[str, Any]) -> str:
    """The machine line of a run."""
    m = doc.get("machine")
    if isinstance(m, str):
        return m
    if not isinstance(m, dict):
        return "machine not recorded"
    words = [f"{m.get('cpus', '?')} cores {m.get('cpu', '')}".strip()]
    if m.get("memory_gib"):
        words.append(f"{m['memory_gib']} GiB")
    if m.get("python"):
        words.append(f"Python {m['python']}")
    return ", ".join(words)


def _latency(rung: dict[str, Any], fraction: float) -> str:
    """p50 / p99 at a fraction of the rung's maximum: to a consumer's read when the run measured it
    (older runs: to the broker's append)."""
    if rung.get("latency_skipped"):
        return "not measured"
    for point in rung.get("latency") or []:
        if abs(float(point.get("fraction_of_max", -1)) - fraction) < 1e-9:
            kind = "read_" if "read_p99_ms" in point else ""
            return f"{num(point.get(kind + 'p50_ms'), 0)} / {num(point.get(kind + 'p99_ms'), 0)}"
    return "-"


def latency_rates(ladder: dict[str, Any]) -> list[str]:
    """Every rung at the same offered rates, against the latency floor of its round (if measured)."""
    rows = ladder.get("latency_table") or []
    if not rows:
        return []
    head = ["events/s", "rung", "p50 ms", "p99 ms", "floor p50 / p99", "p50 above floor", "p99 / floor"]
    note = "Time from an event's sending to a consumer's read of its prediction, at equal offered rates:"
    return [note, "", *table([*head, "cores busy"], [_rate_row(r) for r in rows], right=2)]


def _rate_row(r: dict[str, Any]) -> list[str]:
    name = str(r["rung"]) + (f" (round {r['round']})" if "round" in r else "")
    if "skipped" in r:
        return [num(r["rate"]), name, f"skipped: {r['skipped']}", "", "", "", "", ""]
    return [
        num(r["rate"]),
        name,
        num(r.get("read_p50_ms"), 1),
        num(r.get("read_p99_ms"), 1),
        f"{num(r.get('floor_p50_ms'), 1)} / {num(r.get('floor_p99_ms'), 1)}",
        num(r.get("p50_above_floor_ms"), 1),
        num(r.get("p99_to_floor"), 2),
        num(r.get("machine_cores_busy"), 2),
    ]


def ladder_section(run: Run, charts: dict[str, str]) -> list[str]:
    """A benchmark run: its rungs, its ratios (per round when it had rounds), its chart."""
    ladder = run.doc["ladder"]
    fractions = [float(f) for f in ladder.get("plan", {}).get("fractions", [])]
    valid = ladder.get("valid")
    verdict = (
        "valid" if valid else ("not judged" if valid is None else "invalid: " + str(ladder.get("invalid")))
    )
    lines = [f"### {run.when}: `{run.path.name}`", ""]
    seconds = f", {run.doc['seconds']} s" if run.doc.get("seconds") else ""
    lines += [f"{machine(run.doc)}{seconds}; {verdict}.", ""]
    if ladder.get("warnings"):
        lines += ["Warnings: " + "; ".join(map(str, ladder["warnings"])) + ".", ""]
    rounds = any("round" in r for r in ladder["rungs"])
    head = [
        "rung",
        *(["round"] if rounds else []),
        "events/s",
        "CPU s per 1,000 events",
        "machine cores busy",
        "peak RSS MiB",
        *[f"p50 / p99 ms at {f:.0%}" for f in fractions],
    ]
    rows = [
        [
            r["rung"],
            *([num(r.get("round"))] if rounds else []),
            num(r.get("events_per_s")),
            num(r.get("cpu_s_per_1000"), 3),
            num(r.get("machine_cores_busy")),
            num(r.get("peak_rss_mib")),
            *[_latency(r, f) for f in fractions],
        ]
        for r in ladder["rungs"]
    ]
    lines += table(head, rows)
    lines += latency_rates(ladder)
    by_round = ladder.get("ratios_by_round") or []
    ratios = ladder.get("ratios") or {}
    if ratios:
        head = [
            "ratio",
            *[f"round {i}" for i in range(1, len(by_round) + 1)],
            "median" if by_round else "value",
        ]
        rows = [
            [f"`{k}`", *[num(r.get(k)) for r in by_round], num(v)]
            for k, v in ratios.items()
            if v is not None or any(r.get(k) is not None for r in by_round)
        ]
        lines += table(head, rows)
    if run.path.stem in charts:
        lines += [f"![{CHART_NOTE} {run.path.stem}]({charts[run.path.stem]})", ""]
    return lines


def _flat(section: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            inner = value.get("p50_us") if "p50_us" in value else None
            if inner is not None:
                flat[prefix + key] = inner
            else:
                flat.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[prefix + key] = value
    return flat


def first_of_each(runs: list[Run], key: str) -> list[tuple[Run, dict[str, Any]]]:
    """``(run, section)`` for each distinct ``key`` section, under the oldest run holding it."""
    seen: dict[str, tuple[Run, dict[str, Any]]] = {}
    for run in reversed(runs):  # oldest first: a copied section stays with its first run
        section = run.doc.get(key)
        if isinstance(section, dict):
            seen.setdefault(json.dumps(section, sort_keys=True), (run, section))
    return sorted(seen.values(), key=lambda pair: pair[0].order, reverse=True)


def columns_section(runs: list[Run], key: str, title: str, unit: str) -> list[str]:
    """One column per run, one row per figure of a section (micro-benchmarks, broker start-up)."""
    found = first_of_each(runs, key)
    if not found:
        return []
    flats = [_flat(section) for _, section in found]
    names = list(dict.fromkeys(name for flat in flats for name in flat))
    head = [f"{title} ({unit})", *[f"`{run.path.stem}`" for run, _ in found]]
    rows = [[f"`{name}`", *[num(flat.get(name)) for flat in flats]] for name in names]
    return table(head, rows)


def formats_section(runs: list[Run]) -> list[str]:
    """The pipeline per wire format, in process: one table per run."""
    lines: list[str] = []
    for run, section in first_of_each(runs, "formats"):
        lines += [f"`{run.path.name}` ({run.when}):", ""]
        rows = [
            [
                name,
                num(f.get("pipeline_per_event_us")),
                num(f.get("best_per_event_us")),
                num(f.get("events_per_s")),
                num(f.get("vs_json")),
            ]
            for name, f in section.items()
        ]
        lines += table(
            ["format (in and out)", "p50 µs per event", "best µs per event", "events/s", "vs JSON"], rows
        )
    return lines


def models_section(runs: list[Run]) -> list[str]:
    """The pipeline per kind of model, in process, and a large reference's import: per run."""
    lines: list[str] = []
    for run, section in first_of_each(runs, "models"):
        lines += [f"`{run.path.name}` ({run.when}):", ""]
        figures = ("inputs", "string_features", "pipeline_per_event_us", "cpu_per_event_us", "events_per_s")
        rows = [
            [f"{kind}: {f.get('model')}", *[num(f.get(k)) for k in (*figures, "vs_tensor")]]
            for kind, f in section.items()
            if isinstance(f, dict)
        ]
        head = ["model", "inputs", "string features", "p50 µs per event", "CPU µs per event", "events/s"]
        lines += table([*head, "vs one tensor"], rows)
        if "import_seconds" in section:
            size = num(section.get("import_rows"))
            lines += [f"`model import` of {size} reference rows: {num(section['import_seconds'])} s.", ""]
        elif "error" in section:
            lines += [f"Not measured: {num(section['error'])}.", ""]
    return lines


def memory_section(runs: list[Run]) -> list[str]:
    """The worker's ten-minute memory runs."""
    rows = []
    for run, m in first_of_each(runs, "memory"):
        if "rss_start_mib" not in m:
            continue  # the outcome store's memory: in the outcome worker's table
        rows.append(
            [
                str(m.get("date", run.when))[:16].replace("T", " "),
                f"`{run.path.name}`",
                num(m.get("minutes")),
                num(m.get("offered_per_s")),
                num(m.get("rss_start_mib")),
                num(m.get("rss_max_mib")),
                num(m.get("rss_end_mib")),
                num(m.get("slope_second_half_mib_per_hour")),
            ]
        )
    head = [
        "run",
        "first in",
        "minutes",
        "offered events/s",
        "RSS start MiB",
        "RSS max MiB",
        "RSS end MiB",
        "slope, second half, MiB/h",
    ]
    return table(head, rows, right=2) if rows else []


def _get(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


OUTCOME_ROWS: list[tuple[str, str, int | None]] = [
    ("scorer events/s", "scorer.events_per_s", None),
    ("scorer CPU s per 1,000 events", "scorer.cpu_s_per_1000", 3),
    ("outcome worker joins/s", "join.joins_per_s", None),
    ("outcome worker CPU s per 1,000 joins", "join.cpu_s_per_1000", 3),
    ("joins per scored event (rate ratio)", "joins_per_scored_event", 2),
    ("joins/s, outcomes by CRC32 (repartitioned)", "join_crc32_outcomes.joins_per_s", None),
    ("outcomes moved through the repartition topic", "join_crc32_outcomes.repartitioned", None),
    ("repartition cost (joins/s by murmur2 over by CRC32)", "repartition_cost", 3),
    ("10M pending: store fill entries/s", "memory.entries_per_s", None),
    ("10M pending: peak RSS MiB (see note)", "memory.peak_rss_mib", None),
    ("10M pending: bytes per entry on disk", "memory.disk_bytes_per_entry", None),
    ("10M pending: lookup µs", "memory.lookup_us", None),
    ("1M pending: all held after SIGKILL, s", "recovery.after_sigkill_s", 1),
    ("1M pending: all held on a new host, s", "recovery.new_host_s", 1),
    ("1M pending: changelog read on a new host, s", "recovery.new_host_restore_s", 1),
]


def outcomes_section(runs: list[Run]) -> list[str]:
    """The outcome worker against the scorer: from ladder runs and the outcome benchmark's own runs."""
    found = [
        (r, r.doc["ladder"]["outcomes"]) for r in runs if r.kind == "ladder" and "outcomes" in r.doc["ladder"]
    ]
    found += [(r, r.doc) for r in runs if r.kind == "outcomes"]
    found.sort(key=lambda pair: pair[0].order, reverse=True)
    if not found:
        return []
    head = ["figure", *[f"`{run.path.stem}`" for run, _ in found]]
    rows = [
        [label, *[num(_get(doc, path), digits) for _, doc in found]] for label, path, digits in OUTCOME_ROWS
    ]
    notes = [
        f"`{run.path.stem}`: {run.doc.get('note') or run.doc.get('what')}"
        for run, _ in found
        if run.doc.get("note") or run.doc.get("what")
    ]
    return table(head, rows) + [f"- {n}" for n in notes] + ([""] if notes else [])


def faults_section(runs: list[Run]) -> list[str]:
    """Each fault-injection run: per scenario, events, lost, duplicated and recovery."""
    lines: list[str] = []
    for run in (r for r in runs if r.kind == "faults"):
        results = run.doc["results"]
        long = "long sizes (`make chaos`)" if run.doc.get("chaos") else "short sizes"
        lines += [
            f"### {run.when}: `{run.path.name}`",
            "",
            f"{machine(run.doc)}; {long}; {len(results)} scenarios recorded.",
            "",
        ]
        rows = [
            [
                r["scenario"],
                r["guarantee"],
                num(r.get("events")),
                num(r.get("lost")),
                num(r.get("duplicated")),
                num(r.get("recovery_s"), 1),
                num(r.get("live_s"), 1),
                num(r.get("seconds"), 1),
            ]
            for r in results
        ]
        head = [
            "scenario",
            "guarantee",
            "events",
            "lost",
            "duplicated",
            "to first output s",
            "to lag < 1 s, s",
        ]
        lines += table([*head, "took s"], rows, 2)
    return lines


def drift_section(runs: list[Run]) -> list[str]:
    """Drift detection over seeds: false alarms, delays, cost."""
    found = [r for r in runs if r.kind == "drift"]
    if not found:
        return []

    def delay(d: dict[str, Any] | None) -> str:
        return (
            "-"
            if not d
            else f"{num(d.get('median'))} median, {num(d.get('max'))} at most ({d.get('detected')})"
        )

    def largest(d: dict[str, Any], key: str) -> str:
        return num(max((s.get(key, 0) for s in d.get("stationary", [])), default=None))

    def run(d: dict[str, Any]) -> str:
        size = f"{len(d.get('seeds', []))} x {num(d.get('events_per_stream'))}"
        return f"{size} ({num(d.get('change_at'))})"

    def shape(d: dict[str, Any]) -> str:
        return ", ".join(num(d.get(k)) for k in ("window", "partitions", "outcome_window"))

    def alarms(d: dict[str, Any]) -> str:
        return " / ".join(num(v) for v in d.get("false_alarms_per_100k_events", {}).values())

    head = ["figure", *[f"`{r.path.stem}`" for r in found]]
    figures: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("streams x events (change at)", run),
        ("window, partitions, outcome window", shape),
        ("false alarms per 100k events: windows / detectors / loss", alarms),
        (
            "feature shift: first detector alarm, events after",
            lambda d: delay(_get(d, "feature_shift_delay.detector")),
        ),
        (
            "feature shift: first window over a threshold",
            lambda d: delay(_get(d, "feature_shift_delay.window")),
        ),
        (
            "concept change: loss detector, outcomes after",
            lambda d: delay(_get(d, "concept_change_delay.loss_detector_outcomes")),
        ),
        (
            "largest stationary PSI / distance",
            lambda d: f"{largest(d, 'max_psi')} / {largest(d, 'max_distance')}",
        ),
        ("monitor µs per event", lambda d: num(d.get("monitor_us_per_event"))),
    ]
    rows = [[label, *[render(r.doc) for r in found]] for label, render in figures]
    return table(head, rows)


def page(folder: Path, charts: dict[str, str]) -> str:
    """The whole results page."""
    runs = load(folder)
    ladders = [r for r in runs if r.kind == "ladder"]
    lines = [
        "# Results",
        "",
        f"Every measurement kept in `bench/results/` ({len(runs)} documents), newest first, generated",
        "from the JSON when the site is built. How each is measured:",
        "[benchmark method](development/benchmarks.md), [fault injection](development/fault-injection.md),",
        "[drift and outcomes](guides/drift-and-outcomes.md). What each run was for and what it showed:",
        "the [changelog](changelog.md). Figures from different runs are from machines of different",
        "speed and load: compare rungs within a run.",
        "",
        "## Benchmark ladder",
        "",
    ]
    for run in ladders:
        lines += ladder_section(run, charts)
    sections: list[tuple[str, list[str]]] = [
        ("Wire formats in process", formats_section(runs)),
        ("A new schema version in process", columns_section(runs, "evolution", "figure", "µs per event")),
        (
            "Estimated performance on the demo's drifts",
            columns_section(runs, "estimation", "figure", "accuracy, windows or share"),
        ),
        ("Kinds of model in process", models_section(runs)),
        ("Micro-benchmarks", columns_section(runs, "micro", "per event or per call", "µs, p50")),
        ("Embedded broker", columns_section(runs, "broker", "figure", "s or messages/s")),
        ("Worker memory over ten minutes", memory_section(runs)),
        ("Outcome worker", outcomes_section(runs)),
    ]
    for title, body in sections:
        if body:
            lines += [f"## {title}", "", *body]
    if any(title == "Outcome worker" and body for title, body in sections):
        lines += [
            "Note: runs before 2026-11-30 07:55 UTC read the store fill's peak RSS with `getrusage`'s",
            "`ru_maxrss`, which carries the forking process's RSS into the child; later runs read the",
            "process's own high-water mark (`VmHWM`). See the [changelog](changelog.md).",
            "",
        ]
    faults = faults_section(runs)
    if faults:
        lines += ["## Fault injection", "", *faults]
    drift = drift_section(runs)
    if drift:
        lines += ["## Drift detection", "", *drift]
    other = [r for r in runs if r.kind == "other"]
    if other:
        lines += ["## Other documents", "", *[f"- `{r.path.name}` ({r.when})" for r in other], ""]
    return "\n".join(lines).rstrip() + "\n"
