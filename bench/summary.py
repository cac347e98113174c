"""What a ladder run says: whether it is valid, and the ratios the targets are written in.

A ladder is valid only if its limit (the passthrough rung) is the fastest rung, within
:data:`TOLERANCE`, every rung scored every event it was given, and the scores checked matched the
model's. An invalid run keeps its raw figures but gives no ratios: it says why it failed instead.
The latency floor (a bare loop that sends each event on at once) is not the limit: it sets the
latency Kafka allows on the machine, and :func:`latency_table` sets each rung's time to a
downstream consumer's read against it, at the same offered rates.
The registered formats' ratios (``avro_vs_json``, ``json_schema_vs_json``, ``protobuf_vs_json``) are
their one-process rung's events/s over the JSON one's, in the same run; the target is 0.8 or more.
Beside them, each format's CPU seconds per 1,000 events drained (``<format>_cpu_s_per_1000``) and its
time to a consumer's read at 1,000 events/s (``<format>_read_p50_ms_at_1000``, ``..._p99_...``), as
JSON's (``streamscore_...``). A model with one
input per column and two string features (``columns_model_vs_tensor``): its rung's events/s over the
demo model's (one float tensor), in the same run; the target is 0.7 or more.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

#: How much faster than the limit a rung may measure before the run counts as invalid.
TOLERANCE = 0.10
#: Rungs that are not scorers and may drain faster than the limit: the latency floor.
NOT_LIMITED = frozenset({"floor"})

Result = dict[str, object]


def problems(rungs: Sequence[Result], tolerance: float = TOLERANCE) -> list[str]:
    """Why the run cannot be trusted; empty when it can."""
    found: list[str] = []
    measured = [r for r in rungs if "events_per_s" in r]
    limit = _by_key(rungs, "passthrough")
    if limit is not None and "events_per_s" in limit:
        ceiling = float(limit["events_per_s"])  # type: ignore[arg-type]
        found += [
            f"{r['rung']} measured {r['events_per_s']:,} events/s, faster than the limit "
            f"({ceiling:,.0f}/s) by more than {tolerance:.0%}: the limit was not measured at saturation"
            for r in measured
            if r is not limit
            and r.get("key") not in NOT_LIMITED
            and float(r["events_per_s"]) > ceiling * (1 + tolerance)  # type: ignore[arg-type]
        ]
    elif limit is not None:
        found.append(f"the limit rung failed: {limit.get('error')}")
    for r in measured:
        if r.get("outputs", r.get("events")) != r.get("events"):
            found.append(f"{r['rung']} wrote {r.get('outputs')} predictions for {r.get('events')} events")
        if r.get("scores_match") is False:
            found.append(f"{r['rung']} gave scores that differ from the model's for the same events")
    return found


def ratios(rungs: Sequence[Result]) -> dict[str, float | None]:
    """The figures of the target table (None where a rung is missing or failed); of a run in rounds,
    each figure's median over the rounds' own (:func:`by_round`)."""
    each = by_round(rungs)
    if len(each) == 1:
        return each[0]
    return {name: _median([e[name] for e in each]) for name in each[0]}


def by_round(rungs: Sequence[Result]) -> list[dict[str, float | None]]:
    """The figures of each round, from that round's rungs alone."""
    rounds = sorted({int(r.get("round", 1)) for r in rungs})  # type: ignore[call-overload]
    return [_ratios([r for r in rungs if r.get("round", 1) == n]) for n in rounds]


def _ratios(rungs: Sequence[Result]) -> dict[str, float | None]:
    rate = {k: _figure(rungs, k, "events_per_s") for k in _KEYS}
    one = _by_key(rungs, "streamscore")
    points = [p for p in (one or {}).get("latency", []) if "fraction_of_max" in p]  # type: ignore[attr-defined]
    p99 = {round(float(p["fraction_of_max"]) * 100): p.get("append_p99_ms") for p in points}
    return {
        "streamscore_1_process_to_bare_loop": _div(rate["streamscore"], rate["bare"]),
        "streamscore_to_naive_faust": _div(rate["streamscore"], rate["naive"]),
        "streamscore_to_quix_per_process": _div(rate["streamscore"], rate["quix"]),
        "exactly_once_to_bare_loop": _div(rate["streamscore-eos"], rate["bare"]),
        "streamscore_cpu_s_per_1000": _figure(rungs, "streamscore", "cpu_s_per_1000"),
        "streamscore_p99_ms_at_50pct": p99.get(50),  # type: ignore[dict-item]
        "streamscore_p99_ms_at_70pct": p99.get(70),  # type: ignore[dict-item]
        "two_processes_to_one": _div(rate["streamscore-2"], rate["streamscore"]),
        "shadow_challenger_to_none": _div(rate["streamscore-shadow"], rate["streamscore"]),
        "reasons_to_none": _div(rate["streamscore-reasons"], rate["streamscore"]),
        **_formats(rungs, rate),
        "columns_model_vs_tensor": _div(rate["streamscore-columns"], rate["streamscore"]),
        "columns_model_cpu_s_per_1000": _figure(rungs, "streamscore-columns", "cpu_s_per_1000"),
        **_read_latency(rungs),
    }


def _read_latency(rungs: Sequence[Result]) -> dict[str, float | None]:
    """The latency targets: times to a consumer's read (ms) at equal rates, the floor's beside them."""

    def read(key: str, rate: int, q: str) -> float | None:
        point = _at(_by_key(rungs, key), rate) or {}
        return None if point.get(f"read_{q}_ms") is None else float(point[f"read_{q}_ms"])  # type: ignore[arg-type]

    p50, floor50 = read("streamscore", 1000, "p50"), read("floor", 1000, "p50")
    return {
        "streamscore_read_p50_ms_at_1000": p50,
        "streamscore_read_p99_ms_at_1000": read("streamscore", 1000, "p99"),
        **{
            f"{name}_read_{q}_ms_at_1000": read(f"streamscore-{fmt}", 1000, q)
            for fmt, name in FORMATS.items()
            for q in ("p50", "p99")
        },
        "floor_read_p50_ms_at_1000": floor50,
        "floor_read_p99_ms_at_1000": read("floor", 1000, "p99"),
        "streamscore_p50_above_floor_ms_at_1000": None
        if p50 is None or floor50 is None
        else round(p50 - floor50, 2),
        "streamscore_p99_to_floor_at_1000": _div(
            read("streamscore", 1000, "p99"), read("floor", 1000, "p99")
        ),
        "streamscore_read_p99_ms_at_3000": read("streamscore", 3000, "p99"),
        "quix_read_p99_ms_at_3000": read("quix", 3000, "p99"),
        "exactly_once_read_p99_ms_at_1000": read("streamscore-eos", 1000, "p99"),
    }


def _formats(rungs: Sequence[Result], rate: dict[str, float | None]) -> dict[str, float | None]:
    """Each registered format's one-process rung against JSON's: events/s over JSON's, CPU per event."""
    found: dict[str, float | None] = {}
    for fmt, name in FORMATS.items():
        found[f"{name}_vs_json"] = _div(rate[f"streamscore-{fmt}"], rate["streamscore"])
        found[f"{name}_cpu_s_per_1000"] = _figure(rungs, f"streamscore-{fmt}", "cpu_s_per_1000")
    return found


def to_limit(rungs: Sequence[Result]) -> None:
    """Add each rung's share of the limit's rate (``ratio_to_limit``), when the limit was measured."""
    ceiling = _figure(rungs, "passthrough", "events_per_s")
    for r in rungs:
        if ceiling and "events_per_s" in r:
            r["ratio_to_limit"] = round(float(r["events_per_s"]) / ceiling, 3)  # type: ignore[arg-type]


def latency_table(rungs: Sequence[Result]) -> list[Result]:
    """At each absolute rate offered, each rung's time to a consumer's read (p50, p99, ms) set against
    the floor's of its round: what it adds to the p50, how many times the p99, and the cores busy."""
    rates = sorted({p["rate"] for r in rungs for p in _points(r) if "rate" in p})  # type: ignore[type-var]
    rows: list[Result] = []
    for rate in rates:
        for r in rungs:
            point = _at(r, rate)
            if point is None:
                continue
            row: Result = {"rate": rate, "rung": r["rung"], **({"round": r["round"]} if "round" in r else {})}
            if "skipped" in point:
                rows.append(row | {"skipped": point["skipped"]})
                continue
            same_round = [f for f in rungs if f.get("round", 1) == r.get("round", 1)]
            rows.append(row | _against(point, _at(_by_key(same_round, "floor"), rate) or {}))
    return rows


def _against(point: Result, floor: Result) -> Result:
    p50, p99 = point.get("read_p50_ms"), point.get("read_p99_ms")
    f50, f99 = floor.get("read_p50_ms"), floor.get("read_p99_ms")
    above = None if p50 is None or f50 is None else round(float(p50) - float(f50), 2)  # type: ignore[arg-type]
    return {
        "read_p50_ms": p50,
        "read_p99_ms": p99,
        "floor_p50_ms": f50,
        "floor_p99_ms": f99,
        "p50_above_floor_ms": above,
        "p99_to_floor": _div(p99, f99),  # type: ignore[arg-type]
        "machine_cores_busy": point.get("machine_cores_busy"),
    }


_COLUMNS = f"{'events/s':>9}  {'rung':<40} {'p50':>8} {'p99':>8} {'p50-floor':>10} {'p99/floor':>9} cores"


def latency_text(rows: Sequence[Result]) -> str:
    """The latency table as text, one line a row (empty without rows)."""
    if not rows:
        return ""
    lines = ["time from occurred_at to a consumer's read (ms), against the latency floor's", _COLUMNS]
    for r in rows:
        name = f"{r['rung']}" + (f" (round {r['round']})" if "round" in r else "")
        start = f"{r['rate']:>9,.0f}  {name[:40]:<40}"
        if "skipped" in r:
            lines.append(f"{start} skipped: {r['skipped']}")
            continue
        above, times = r["p50_above_floor_ms"], r["p99_to_floor"]
        lines.append(
            f"{start} {_num(r['read_p50_ms']):>8} {_num(r['read_p99_ms']):>8}"
            f" {'-' if above is None else f'{above:+.1f}':>10} {'-' if times is None else f'{times:.1f}x':>9}"
            f" {_num(r['machine_cores_busy']):>5}"
        )
    return "\n".join(lines)


def _at(rung: Result | None, rate: object) -> Result | None:
    """The rung's latency point at the absolute ``rate``, if it has one."""
    return next((p for p in _points(rung) if p.get("rate") == rate), None)


def _points(rung: Result | None) -> list[Result]:
    return list(rung.get("latency") or []) if rung else []  # type: ignore[call-overload]


def _num(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f}"  # type: ignore[arg-type]


#: The registered formats' one-process rungs (``streamscore-<format>``) by the name of their figures.
FORMATS = {"avro": "avro", "json-schema": "json_schema", "protobuf": "protobuf"}
_KEYS = (
    "passthrough", "bare", "naive", "quix", "streamscore", "streamscore-2", "streamscore-eos",
    "streamscore-shadow", "streamscore-columns", "streamscore-reasons",
    *(f"streamscore-{fmt}" for fmt in FORMATS),
)  # fmt: skip


def _by_key(rungs: Sequence[Result], key: str) -> Result | None:
    return next((r for r in rungs if r.get("key") == key), None)


def _figure(rungs: Sequence[Result], key: str, name: str) -> float | None:
    r = _by_key(rungs, key)
    return None if r is None or name not in r else float(r[name])  # type: ignore[arg-type]


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def _div(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None
