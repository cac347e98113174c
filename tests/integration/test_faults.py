"""Fault injection: the worker under kills, shutdowns, a broker restart, rebalances, a throttled
downstream with a burst, and poison, each while traffic flows; every input must be accounted for.

Exactly once (read_committed): one outcome per event. At least once: at least one, duplicates
counted. ``make test`` runs the short sizes; ``make chaos`` (``STREAMSCORE_CHAOS=1``) the long
ones and the variants marked ``chaos``. See ``tests/faults.py`` for the kit.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time

import pytest
from conftest import read_topic
from faults import (
    POISON,
    Load,
    Result,
    RssSampler,
    account,
    byte_rate,
    collect,
    latency_p99,
    merge,
    produce_poison,
    recovery,
    size,
    wait_written,
    written,
)

from stream.contracts import DeadLetter
from stream.kafka.topics import ensure_topics
from stream.tools.broker import EmbeddedKafka, kafka_classpath

pytestmark = pytest.mark.faults
ALO, EOS = "at_least_once", "exactly_once"
BOTH = [ALO, pytest.param(EOS, marks=pytest.mark.chaos)]  # exactly once in the long suite
STRICT_SHORT = [pytest.param(ALO, marks=pytest.mark.chaos), EOS]  # the stricter one in the short suite
RATE = 1_000  # events/s of steady load


@pytest.fixture
def topics(kafka_bootstrap, worker_topics):
    """Create this test's four topics with 3 partitions on the session broker (``topics(n)`` for n)."""

    def make(partitions: int = 3, bootstrap: str | None = None):
        t = worker_topics
        names = [t.input, t.predictions, t.provenance, t.dlq]
        ensure_topics(bootstrap or kafka_bootstrap, dict.fromkeys(names, partitions))
        return t

    return make


def _outputs(t) -> tuple[str, ...]:
    return (t.predictions, t.dlq)


def _wait_assigned(*workers, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(re.search(r"assigned partitions \[\d", w.output()) for w in workers):
        for w in workers:
            assert w.proc.poll() is None, w.output()[-3000:]
        assert time.monotonic() < deadline, [w.output()[-2000:] for w in workers]
        time.sleep(0.1)


def _row(scenario: str, guarantee: str, ledger, recovery_s, began: float, details: dict) -> Result:
    return Result(
        scenario,
        guarantee,
        ledger.events,
        len(ledger.lost),
        ledger.duplicated,
        recovery_s,
        round(time.monotonic() - began, 1),
        details,
    )


def _supervise(worker, restart, bootstrap: str, outputs: tuple[str, ...], watch_s: float, until_s: float):
    """Watch ``worker`` as its supervisor would (Kubernetes, ``--processes``): one that ends is started
    again with ``restart()``. Returns after ``watch_s`` once outputs grew over the last 5 s, or after
    ``until_s``: the worker now running and the exit codes and last log lines of those that ended."""
    ended: list[tuple[int, str]] = []
    began = time.monotonic()
    seen = [(began, written(bootstrap, *outputs))]
    while time.monotonic() - began < until_s:
        if worker.proc.poll() is not None:
            ended.append((worker.proc.returncode, worker.output()[-3000:]))
            worker = restart()
        time.sleep(1.0)
        now = time.monotonic()
        seen.append((now, written(bootstrap, *outputs)))
        earlier = [n for t, n in seen if t <= now - 5]
        if now - began >= watch_s and earlier and seen[-1][1] > earlier[-1]:
            break
    return worker, ended


def _check(ledger, guarantee: str) -> None:
    assert not ledger.lost, f"{len(ledger.lost)} events lost, e.g. {ledger.lost[:5]}"
    assert not ledger.unexpected and not ledger.provenance_missing, ledger
    if guarantee == EOS:
        assert ledger.duplicated == 0, f"{ledger.duplicated} events with more than one outcome"


@pytest.mark.parametrize("guarantee", BOTH)
def test_sigkill_restart(kafka_bootstrap, topics, start_worker, results, guarantee):
    """SIGKILL at seeded random points under load, restart each time: nothing lost (EOS: no duplicate)."""
    t, rng, kills = topics(), random.Random(31), size(1, 4)
    began = time.monotonic()
    worker = start_worker(processing_guarantee=guarantee, instance_id="restarted")
    load = Load(kafka_bootstrap, t.input, RATE, seed=31)
    faults, seen = [], 0
    for _ in range(kills):
        wait_written(kafka_bootstrap, _outputs(t), seen + 1, worker, 60)
        time.sleep(rng.uniform(1.0, 4.0))
        worker.proc.send_signal(signal.SIGKILL)
        faults.append(time.time())
        worker.proc.wait(10)
        seen = written(kafka_bootstrap, *_outputs(t))
        # at once and under the same name, as a supervisor would: it fences its predecessor
        worker = start_worker(processing_guarantee=guarantee, instance_id="restarted")
    wait_written(kafka_bootstrap, _outputs(t), seen + 1, worker, 60)
    time.sleep(3)
    inputs = load.stop()
    outputs = collect(kafka_bootstrap, t, inputs, read_committed=guarantee == EOS)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    ledger = account(inputs, outputs)
    recoveries = [recovery(outputs, at) for at in faults]
    print(f"SIGKILL x{kills} ({guarantee}): {ledger}; recoveries {recoveries}")
    _check(ledger, guarantee)
    assert ledger.duplicated <= kills * RATE * 5, "more than ~5 s of traffic scored again per kill"
    results.append(
        _row(
            f"SIGKILL x{kills}, restart",
            guarantee,
            ledger,
            max(r["first_output_s"] for r in recoveries),
            began,
            {"recoveries": recoveries},
        )
    )


@pytest.mark.parametrize("guarantee", BOTH)
def test_sigterm_commits_and_exits(kafka_bootstrap, topics, start_worker, results, guarantee):
    """SIGTERM under load: the worker exits within a bound, having committed what it emitted."""
    t = topics()
    began = time.monotonic()
    worker = start_worker(processing_guarantee=guarantee, instance_id="restarted")
    load = Load(kafka_bootstrap, t.input, RATE, seed=41)
    wait_written(kafka_bootstrap, _outputs(t), 1, worker, 60)
    time.sleep(size(3, 10))
    fault = time.time()
    worker.proc.send_signal(signal.SIGTERM)
    worker.proc.wait(60)
    shutdown_s = round(time.time() - fault, 2)
    code = worker.proc.returncode
    restarted_at = time.time()
    worker = start_worker(processing_guarantee=guarantee, instance_id="restarted")
    wait_written(kafka_bootstrap, _outputs(t), written(kafka_bootstrap, *_outputs(t)) + 1, worker, 60)
    time.sleep(3)
    inputs = load.stop()
    outputs = collect(kafka_bootstrap, t, inputs, read_committed=guarantee == EOS)
    ledger = account(inputs, outputs)
    rec = recovery(outputs, restarted_at)  # outputs after the SIGTERM come from the shutdown itself
    print(f"SIGTERM ({guarantee}): exit {code} after {shutdown_s} s; {ledger}; {rec} after the restart")
    _check(ledger, guarantee)
    assert code == 0, worker.output()[-3000:]
    assert shutdown_s < 15, "graceful shutdown within 15 s"
    assert ledger.duplicated <= 100, "the shutdown committed what was emitted"
    results.append(
        _row(
            "SIGTERM, restart",
            guarantee,
            ledger,
            rec["first_output_s"],
            began,
            {
                "shutdown_s": shutdown_s,
                "exit_code": code,
                "from_sigterm": recovery(outputs, fault),
            },
        )
    )


@pytest.mark.parametrize(
    ("how", "guarantee"),
    [
        ("stop", ALO),
        pytest.param("stop", EOS, marks=pytest.mark.chaos),
        pytest.param("kill", EOS, marks=pytest.mark.chaos),
    ],
)
def test_broker_restart_under_load(topics, start_worker, tmp_path, results, how, guarantee):
    """Stop (SIGTERM) or kill (SIGKILL) the broker under load and start it again on the same data and
    port: the worker carries on without a restart, except where librdkafka's transactional producer
    waits forever for a coordinator it lost (confluentinc/librdkafka#5511): then the worker ends itself
    once the call is past its timeout, its supervisor starts it again, and nothing is lost."""
    down_s = size(5, 15)
    began = time.monotonic()
    with EmbeddedKafka(data_dir=tmp_path / "kafka") as kafka:
        bootstrap = kafka.bootstrap_servers
        t = topics(bootstrap=bootstrap)
        worker = start_worker(bootstrap=bootstrap, processing_guarantee=guarantee, instance_id="kept")
        load = Load(bootstrap, t.input, RATE, seed=51)
        wait_written(bootstrap, _outputs(t), 1, worker, 60)
        time.sleep(3)
        fault = time.time()
        (kafka.stop if how == "stop" else kafka.kill)()
        time.sleep(down_s)
        back = time.time()
        kafka.start()
        assert kafka.bootstrap_servers == bootstrap
        worker, ended = _supervise(
            worker,
            lambda: start_worker(bootstrap=bootstrap, processing_guarantee=guarantee, instance_id="kept"),
            bootstrap,
            _outputs(t),
            watch_s=size(8, 20),
            until_s=120,
        )
        inputs = load.stop()
        outputs = collect(bootstrap, t, inputs, read_committed=guarantee == EOS, timeout=60)
        ledger = account(inputs, outputs)
        rec = recovery(outputs, back)
        print(
            f"broker {how} ({guarantee}): exits {[c for c, _ in ended]}; {ledger}; {rec} after it came back"
        )
        if ledger.lost:
            print("WORKER OUTPUT:\n" + worker.output()[-12000:])
        for code, output in ended:  # the one exit allowed: the watchdog's, exactly once
            assert guarantee == EOS and code == 70 and "librdkafka#5511" in output, output
        assert len(ended) <= 1, [output for _, output in ended]
        _check(ledger, guarantee)
        worker.stop()  # while the broker is up, so that it can leave the group
    results.append(
        _row(
            f"broker {'stopped' if how == 'stop' else 'killed'}, down {down_s} s",
            guarantee,
            ledger,
            rec["first_output_s"],
            began,
            {
                "down_s": down_s,
                "from_stop": recovery(outputs, fault),
                "live_s": rec["live_s"],
                "worker_restarts": len(ended),
            },
        )
    )


@pytest.mark.parametrize("guarantee", STRICT_SHORT)
def test_scale_out_and_in(kafka_bootstrap, topics, start_worker, results, guarantee):
    """1 -> 2 -> 1 workers under load over 6 partitions: two rebalances, nothing lost."""
    t = topics(6)
    began = time.monotonic()
    first = start_worker(processing_guarantee=guarantee)
    load = Load(kafka_bootstrap, t.input, RATE, seed=61)
    _wait_assigned(first)
    wait_written(kafka_bootstrap, _outputs(t), 1, first, 60)
    time.sleep(size(3, 10))
    joined = time.time()
    second = start_worker(processing_guarantee=guarantee)
    _wait_assigned(first, second)
    time.sleep(size(4, 10))
    left = time.time()
    assert second.stop() == 0, second.output()[-3000:]
    time.sleep(size(4, 10))
    inputs = load.stop()
    outputs = collect(kafka_bootstrap, t, inputs, read_committed=guarantee == EOS)
    ledger = account(inputs, outputs)
    recs = {"join": recovery(outputs, joined), "leave": recovery(outputs, left)}
    print(f"scale 1-2-1 ({guarantee}): {ledger}; {recs}; exit code {first.proc.poll()}")
    _check(ledger, guarantee)
    results.append(
        _row(
            "scale 1 -> 2 -> 1 workers",
            guarantee,
            ledger,
            max(r["first_output_s"] for r in recs.values()),
            began,
            recs,
        )
    )
    assert first.proc.poll() is None, first.output()[-3000:]


@pytest.mark.parametrize("guarantee", STRICT_SHORT)
def test_zombie_is_fenced(kafka_bootstrap, topics, start_worker, results, guarantee):
    """Two workers under load; one freezes (SIGSTOP) past the session timeout, the group hands its
    partitions to the other, then it wakes (SIGCONT): what it had not committed is dropped (exactly
    once: its transaction aborts, fenced by the group generation), nothing is lost or, exactly once,
    scored twice."""
    t, session_s = topics(6), 6
    began = time.monotonic()
    first = start_worker(processing_guarantee=guarantee, session_timeout_s=session_s)
    zombie = start_worker(processing_guarantee=guarantee, session_timeout_s=session_s)
    load = Load(kafka_bootstrap, t.input, RATE, seed=91)
    _wait_assigned(first, zombie)
    wait_written(kafka_bootstrap, _outputs(t), 1, first, 60)
    time.sleep(size(3, 10))
    zombie.proc.send_signal(signal.SIGSTOP)
    frozen = time.time()
    time.sleep(session_s + 6)  # the group has moved on without it
    zombie.proc.send_signal(signal.SIGCONT)
    woke = time.time()
    time.sleep(size(6, 15))
    inputs = load.stop()
    outputs = collect(kafka_bootstrap, t, inputs, read_committed=guarantee == EOS)
    ledger = account(inputs, outputs)
    recs = {"frozen": recovery(outputs, frozen), "woke": recovery(outputs, woke)}
    print(f"zombie ({guarantee}): {ledger}; {recs}")
    _check(ledger, guarantee)
    assert re.search(r"lost partitions|aborted", zombie.output()), zombie.output()[-3000:]
    for w in (first, zombie):
        assert w.proc.poll() is None, w.output()[-3000:]
    results.append(
        _row(
            "zombie: SIGSTOP past the session timeout, SIGCONT",
            guarantee,
            ledger,
            recs["frozen"]["live_s"],
            began,
            recs,
        )
    )


def _set_quota(bootstrap: str, client_id: str, byte_rate: int) -> None:
    """``producer_byte_rate`` for one client id, with Kafka's own ConfigCommand (confluent-kafka has no
    client-quota admin call)."""
    cmd = [
        "java",
        "-cp",
        f"{kafka_classpath()}/*",
        "org.apache.kafka.tools.ConfigCommand",
        "--bootstrap-server",
        bootstrap,
        "--alter",
        "--add-config",
        f"producer_byte_rate={byte_rate}",
        "--entity-type",
        "clients",
        "--entity-name",
        client_id,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_slow_downstream_and_burst(kafka_bootstrap, topics, start_worker, unique_name, results):
    """A producer quota on the worker and a burst of 10x the steady rate: the backlog waits in Kafka,
    the worker's memory stays bounded, nothing is lost."""
    t, group, steady = topics(), unique_name("quota"), 200
    client_id = f"{group}-throttled"  # the worker's client id: <app_id>-<instance_id>
    quota = 400_000  # bytes/s, about 350 events/s of predictions and provenance (2.3 MB/s unthrottled)
    began = time.monotonic()
    _set_quota(kafka_bootstrap, client_id, quota)
    worker = start_worker(app_id=group, instance_id="throttled")
    rss = RssSampler()
    rss.watch(worker.proc.pid)
    _wait_assigned(worker)
    produced, marks = [], []
    for n, rate in enumerate((steady, 10 * steady, steady)):
        marks.append(time.time())
        seconds = size(3, 10)
        produced.append(Load(kafka_bootstrap, t.input, rate, seed=71 + n, count=rate * seconds).wait())
    inputs = merge(*produced)
    outputs = collect(kafka_bootstrap, t, inputs, read_committed=False, timeout=size(120, 300))
    peak = rss.stop()
    assert worker.proc.poll() is None, worker.output()[-3000:]
    ledger = account(inputs, outputs)
    burst = set(produced[1].valid) | set(produced[1].malformed)
    drained = max(o.ts for o in outputs if o.ident in burst)
    drained_s = round(drained - marks[2], 1)
    rate = byte_rate(outputs, marks[1], drained)
    print(
        f"quota {quota} B/s, burst: {ledger}; peak RSS {peak} MiB; output {rate:.0f} B/s from the burst's "
        f"start until drained, {drained_s} s after its end"
    )
    _check(ledger, ALO)
    assert rate < 2 * quota, "the quota held the worker's output back (its window lets bursts through)"
    assert rss.samples > 10 and peak < 400, f"worker peak RSS {peak} MiB"
    results.append(
        _row(
            f"producer quota {quota // 1000} kB/s + 10x burst",
            ALO,
            ledger,
            drained_s,
            began,
            {
                "peak_rss_mib": peak,
                "output_bytes_per_s": round(rate),
                "steady_rate": steady,
                "burst_rate": 10 * steady,
                "recovery": "burst end to its last event emitted",
            },
        )
    )


def test_poison_at_sustained_rate(kafka_bootstrap, topics, start_worker, results):
    """Poison of every kind next to valid traffic: all of it dead-lettered with a reason, and valid
    events keep their latency (p99 with poison against p99 without, same worker)."""
    t, seconds, poison_rate = topics(), size(6, 30), 250
    began = time.monotonic()
    worker = start_worker()
    _wait_assigned(worker)
    warm = Load(kafka_bootstrap, t.input, 500, seed=80, count=500, malformed_fraction=0).wait()
    clean = Load(kafka_bootstrap, t.input, 500, seed=81, count=500 * seconds, malformed_fraction=0).wait()
    stop = threading.Event()
    poisoned: dict[str, str] = {}
    poisoner = threading.Thread(
        target=lambda: poisoned.update(produce_poison(kafka_bootstrap, t.input, poison_rate, stop, seed=82))
    )
    poisoner.start()
    dirty = Load(kafka_bootstrap, t.input, 500, seed=83, count=500 * seconds, malformed_fraction=0).wait()
    stop.set()
    poisoner.join(60)
    inputs = merge(warm, clean, dirty)
    inputs.malformed.update(poisoned)
    outputs = collect(kafka_bootstrap, t, inputs, read_committed=False)
    assert worker.proc.poll() is None, worker.output()[-3000:]
    ledger = account(inputs, outputs)
    _check(ledger, ALO)
    dead = read_topic(kafka_bootstrap, t.dlq, len(poisoned), timeout=30)
    reasons = {m.key().decode(): DeadLetter.from_headers(m.headers()).reason for m in dead}
    assert set(reasons) == set(poisoned) and all(reasons.values()), "each poison dead-lettered with a reason"
    assert set(poisoned.values()) == set(POISON)
    without, with_poison = latency_p99(outputs, set(clean.valid)), latency_p99(outputs, set(dirty.valid))
    print(
        f"poison {len(poisoned)} at {poison_rate}/s: {ledger}; valid p99 {without * 1e3:.0f} ms without, "
        f"{with_poison * 1e3:.0f} ms with"
    )
    assert with_poison < 5 * without + 0.5, "poison must not hold up valid events"
    results.append(
        _row(
            f"poison {poison_rate}/s beside 500 valid/s",
            ALO,
            ledger,
            None,
            began,
            {
                "poison": len(poisoned),
                "valid_p99_ms_without": round(without * 1e3, 1),
                "valid_p99_ms_with": round(with_poison * 1e3, 1),
            },
        )
    )
