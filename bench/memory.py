"""Memory over a long run: the worker at a steady offered rate, its RSS sampled every few seconds.

``python -m bench --only memory`` (10 minutes at 2,000 events/s unless told otherwise). Reports the
RSS at the start (after warm-up), at the end and at its maximum, and the slope of a least-squares
line through the samples of the second half, in MiB per hour: a leak shows as a slope that stays
positive once the windows, buffers and caches have filled.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import ROOT, Harness
from bench.ladder import RUNGS
from bench.load import Pool


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(
    bootstrap: str, minutes: float = 10.0, rate: float = 2_000.0, every: float = 5.0
) -> dict[str, object]:
    """Offer ``rate`` events/s for ``minutes`` to one worker; RSS samples and their summary."""
    rung = next(r for r in RUNGS if r.key == "streamscore")
    pool = Pool.generate(20_000, seed=7)
    seconds = minutes * 60
    with Harness(bootstrap, rung, pool) as harness:
        harness.warm_up()
        pid = harness.procs[0].pid
        producer = subprocess.Popen(
            [sys.executable, "-m", "bench.load", str(rate), str(seconds), str(harness.events)],
            env=harness.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        samples: list[tuple[float, float]] = []
        read = 0
        started = next_sample = time.monotonic()
        while producer.poll() is None:
            read += len(harness._read(0.05))
            if (now := time.monotonic()) >= next_sample:
                samples.append((round(now - started, 1), round(_rss_mib(pid), 1)))
                next_sample += every
        elapsed = time.monotonic() - started
        for _ in range(40):  # what is still in flight
            if not (batch := harness._read(0.5)):
                break
            read += len(batch)
        alive = harness.procs[0].poll() is None
    second_half = [(t, r) for t, r in samples if t >= seconds / 2]
    slope = statistics.linear_regression([t for t, _ in second_half], [r for _, r in second_half]).slope
    rss = [r for _, r in samples]
    return {
        "minutes": minutes,
        "offered_per_s": rate,
        "predictions_read": read,
        "read_per_s": round(read / elapsed),
        "worker_alive_at_end": alive,
        "rss_start_mib": rss[0],
        "rss_end_mib": rss[-1],
        "rss_max_mib": max(rss),
        "slope_second_half_mib_per_hour": round(slope * 3600, 2),
        "samples": samples,
    }
