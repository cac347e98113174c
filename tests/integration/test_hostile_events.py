"""Hostile ids and times against a real worker on the real broker, and the commands that print them.

One worker scores a stream of valid events with, between them, events whose ids hold control
characters, events dated 9999-12-31 and 0001-01-01, and events dated past what an epoch-seconds
float carries. The ids are dead letters with their reason; the far dates are scored, counted in
their own metric and kept out of the end-to-end latency; then ``tail``, ``explain`` and ``verify``
print those records without a control character of theirs reaching the terminal.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import orjson
import pytest
from confluent_kafka import Producer
from conftest import MODELS, ROOT, WorkerProcess, read_topic, scrape

from stream.contracts import DeadLetter, DriftReport, Prediction
from stream.kafka.topics import ensure_topics
from stream.tools.broker import free_port
from stream.tools.produce import events

FORGED = "\x1b[1A\x1b[2K\rscore      then 1.0  now 1.0 (approve)  bit-exact"
BAD_IDS = {  # key -> (field, value)
    "forged": ("event_id", FORGED),
    "nul": ("event_id", "a\x00b"),
    "newline": ("event_id", "a\r\nMISMATCH b"),
    "del": ("event_id", "a\x7fb"),
    "csi": ("event_id", "a\x9b31mb"),
    "title": ("entity_id", "\x1b]0;owned\x07"),
}
FAR = ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00-01:00"]
BEYOND = ["9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00+01:00"]  # year 10000 and 0 as floats
N_VALID = 240


@dataclass
class Run:
    worker: WorkerProcess
    topics: dict[str, str]
    port: int
    valid: set[str] = field(default_factory=set)
    far: set[str] = field(default_factory=set)
    predictions: list = field(default_factory=list)
    dead: dict[str, DeadLetter] = field(default_factory=dict)  # by key


def _send(bootstrap: str, topic: str, run: Run) -> None:
    """The valid events, with the hostile ones among the first 50, in order on partition 0: there the
    first event dated far ahead of the last drift report makes a report at once."""
    producer = Producer({"bootstrap.servers": bootstrap})
    hostile = [(f"beyond-{i}".encode(), _event(occurred_at=when)) for i, when in enumerate(BEYOND)]
    for key, (name, value) in BAD_IDS.items():
        hostile.append(((FORGED if key == "forged" else key).encode(), _event(**{name: value})))
    for i, when in enumerate(FAR):
        event_id = f"far-{i}-{uuid.uuid4().hex[:6]}"
        run.far.add(event_id)
        hostile.append((f"far-{i}".encode(), _event(event_id=event_id, occurred_at=when)))
    for n, (key, value, _, event_id, _, _) in enumerate(itertools.islice(events(seed=5), N_VALID)):
        if n % 4 == 1 and hostile:
            producer.produce(topic, hostile[0][1], hostile.pop(0)[0], partition=0)
        producer.produce(topic, value, key)
        run.valid.add(event_id)
    assert not hostile and producer.flush(30) == 0


def _event(**changes: str) -> bytes:
    doc = orjson.loads(next(events(seed=9))[1])
    return orjson.dumps({**doc, "event_id": f"e-{uuid.uuid4().hex[:8]}", **changes})


@pytest.fixture(scope="module")
def run(kafka_bootstrap, tmp_path_factory) -> Run:
    base = f"hostile-{uuid.uuid4().hex[:8]}"
    names = ("events", "predictions", "provenance", "dlq", "drift", "model-changes", "outcomes")
    topics = {t: f"{base}.{t}" for t in names}
    ensure_topics(kafka_bootstrap, {topics["events"]: 3})
    folder, port = tmp_path_factory.mktemp("hostile"), free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMSCORE_APP_ID": base,
        "STREAMSCORE_INPUT_TOPIC": topics["events"],
        "STREAMSCORE_PREDICTION_TOPIC": topics["predictions"],
        "STREAMSCORE_PROVENANCE_TOPIC": topics["provenance"],
        "STREAMSCORE_DLQ_TOPIC": topics["dlq"],
        "STREAMSCORE_DRIFT_TOPIC": topics["drift"],
        "STREAMSCORE_MODEL_CHANGES_TOPIC": topics["model-changes"],
        "STREAMSCORE_OUTCOME_TOPIC": topics["outcomes"],
        "STREAMSCORE_MODEL_DIR": str(MODELS),
        "STREAMSCORE_DATA_DIR": str(folder / "data"),
        "STREAMSCORE_METRICS_PORT": str(port),
        "STREAMSCORE_INSTANCE_ID": "hostile0",
        "STREAMSCORE_BATCH_SIZE": "32",
        "STREAMSCORE_BATCH_MAX_WAIT_MS": "5",
        "STREAMSCORE_DRIFT_WINDOW": "100",
        "STREAMSCORE_DRIFT_WINDOW_S": "3600",  # an event dated an hour past the last report makes one
    }
    worker = WorkerProcess(env, folder / "worker.log").start()
    found = Run(worker, topics, port)
    try:
        _send(kafka_bootstrap, topics["events"], found)
        n_scored = len(found.valid) + len(found.far)
        found.predictions = read_topic(kafka_bootstrap, topics["predictions"], n_scored, timeout=90)
        dead = read_topic(kafka_bootstrap, topics["dlq"], len(BAD_IDS) + len(BEYOND), timeout=30)
        found.dead = {m.key().decode(errors="replace"): DeadLetter.from_headers(m.headers()) for m in dead}
        assert worker.proc.poll() is None, worker.output()[-3000:]
        yield found
    finally:
        worker.stop()


def _cli(run: Run, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", *args],
        env=run.worker.env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _raw_controls(output: bytes) -> list[int]:
    """Bytes of output that a terminal would act on: C0 but newline, DEL, and C1 (as UTF-8)."""
    text = output.decode()
    return [ord(c) for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0]


def test_ids_with_control_characters_are_dead_letters_with_their_reason(run):
    for key, (name, _) in BAD_IDS.items():
        dead = run.dead[FORGED if key == "forged" else key]
        assert dead.stage == "schema" and dead.topic == run.topics["events"], (key, dead)
        assert dead.reason == f"{name}: control characters (U+0000-U+001F, U+007F-U+009F) are not allowed"
    assert {p.event_id for p in map(_prediction, run.predictions)}.isdisjoint(v for _, v in BAD_IDS.values())


def test_times_an_epoch_float_cannot_carry_are_dead_letters(run):
    for i in range(len(BEYOND)):
        dead = run.dead[f"beyond-{i}"]
        assert dead.stage == "schema" and dead.reason.startswith("occurred_at: Input should be"), dead


def _prediction(m) -> Prediction:
    return Prediction.model_validate_json(m.value())


def test_far_dated_and_valid_events_are_all_scored_once(run):
    ids = [p.event_id for p in map(_prediction, run.predictions)]
    assert len(ids) == len(set(ids)) and set(ids) == run.valid | run.far


def test_far_dated_events_are_counted_apart_and_the_latency_stays_sane(run):
    samples = scrape(run.port)
    n_scored = len(run.valid) + len(run.far)
    assert samples[("streamscore_events_scored_total", ())] == n_scored
    assert samples[("streamscore_events_clock_skewed_total", ())] == len(FAR)
    count = samples[("streamscore_end_to_end_latency_seconds_count", ())]
    total = samples[("streamscore_end_to_end_latency_seconds_sum", ())]
    assert count == len(run.valid), "only the events dated near the clock"
    assert 0 <= total <= 120 * count, f"a latency sum of {total} s over {count} events"
    deadline = time.monotonic() + 15  # the report line: every 5 s
    while not (reports := _reports(run.worker)) or reports[-1]["clock_skewed_total"] < len(FAR):
        assert time.monotonic() < deadline, run.worker.output()[-2000:]
        time.sleep(0.5)
    assert reports[-1]["clock_skewed_total"] == len(FAR)
    assert all(r["latency_p99_ms"] is None or 0 <= r["latency_p99_ms"] <= 120_000 for r in reports), reports


def _reports(worker: WorkerProcess) -> list[dict]:
    """The figures of the worker's report lines (JSON logs)."""
    found = []
    for line in worker.output().splitlines():
        if '"clock_skewed_total"' in line:
            found.append(orjson.loads(line))
    return found


def test_the_drift_window_holding_far_dates_is_reported(run, kafka_bootstrap):
    """With a window in event time, the first event dated 9999 ends a window at once: its report
    carries the date, and no date past what a float carries reaches one."""
    reports = [DriftReport.model_validate_json(m.value()) for m in read_topic(
        kafka_bootstrap, run.topics["drift"], 1, timeout=30)]  # fmt: skip
    windows = [r for r in reports if r.kind == "window"]
    assert any(w.window_end.year == 9999 for w in windows), run.worker.output()[-2000:]


def test_tail_explain_and_verify_print_no_control_character_of_a_record(run, kafka_bootstrap):
    total = N_VALID + len(BAD_IDS) + len(FAR) + len(BEYOND)
    tail = _cli(run, "tail", run.topics["events"], "--from-beginning", "--count", str(total))
    assert tail.returncode == 0 and not _raw_controls(tail.stdout), _raw_controls(tail.stdout)[:10]
    heads = [line for line in tail.stdout.decode().splitlines() if " key=" in line]
    assert len(heads) == total, "one line per message head: no key makes another"
    assert sum(line.endswith("bit-exact") and "\\x1b[1A" in line for line in heads) == 1

    dead = run.dead[FORGED]
    explained = _cli(run, "explain", "--partition", str(dead.partition), "--offset", str(dead.offset))
    assert explained.returncode == 0, explained.stderr
    assert not _raw_controls(explained.stdout), explained.stdout
    lines = explained.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["event", "input", "outcome", "record"], lines
    assert "\\x1b[1A\\x1b[2K\\rscore" in lines[1] and "stage schema" in lines[2]

    producer = Producer({"bootstrap.servers": kafka_bootstrap})  # a record breaking the contract
    producer.produce(run.topics["provenance"], b"\x1b[2J{not json\r\n", FORGED.encode())
    assert producer.flush(30) == 0
    checked = _cli(run, "verify", "--sample", "100000")
    assert checked.returncode == 1, checked.stderr
    assert not _raw_controls(checked.stdout), checked.stdout[-500:]
    lines = checked.stdout.decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith("MISMATCH \\x1b[1A"), lines
    assert lines[1].startswith(f"verified {len(run.valid) + len(run.far) + 1} of ")
