"""Run the benchmarks and write ``bench/results/<date>.json`` with the machine they ran on."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

from bench import broker_startup

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "cpu": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            platform.processor(),
        ),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    report = {
        "date": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "broker": broker_startup.run(repeats=1 if args.quick else 3),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{now:%Y-%m-%d}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
