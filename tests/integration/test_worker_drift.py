"""The worker reports drift on its drift topic: quiet on the reference distribution, loud after a shift,
and its windows and detectors survive a restart."""

from __future__ import annotations

import re

import orjson
from conftest import read_topic

from stream.contracts import DriftReport
from stream.kafka.topics import ensure_topics
from stream.tools.produce import produce

WINDOW = 2_000
PARTITIONS = 3
STATIONARY = 20_000
SHIFT_AT = 1_500  # events after the restart


def _reports(kafka_bootstrap, topic, expected):
    return [
        DriftReport.model_validate_json(m.value()) for m in read_topic(kafka_bootstrap, topic, expected, 90)
    ]


def test_drift_reports_and_state_across_a_restart(kafka_bootstrap, worker_topics, start_worker, unique_name):
    drift_topic = unique_name("drift")
    ensure_topics(kafka_bootstrap, {worker_topics.input: PARTITIONS})
    settings = {"drift_window": WINDOW, "drift_topic": drift_topic}

    # 1. 20,000 events from the reference distribution: ten quiet windows, no detector alarm
    first = start_worker(**settings)
    produce(kafka_bootstrap, worker_topics.input, count=STATIONARY, seed=61)
    quiet = _reports(kafka_bootstrap, drift_topic, STATIONARY // WINDOW - 1)  # the 10th may need more
    assert len(quiet) in (9, 10) and all(r.kind == "window" for r in quiet), [r.kind for r in quiet]
    assert all(r.verdict == "ok" and r.alarms == [] for r in quiet)
    assert max(max(r.psi.values()) for r in quiet) < 0.1
    assert all(r.partitions == [0, 1, 2] and 1_800 <= r.events <= 2_200 for r in quiet)
    assert first.stop() == 0
    quiet = _reports(kafka_bootstrap, drift_topic, len(quiet))  # all of the first worker's reports
    last_offsets = {k: v.last for k, v in quiet[-1].offsets.items()}

    # 2. restarted: the windows and detectors come back from the state topic
    second = start_worker(**settings)
    second_run = produce(
        kafka_bootstrap, worker_topics.input, count=6_000, seed=62, drift_at=SHIFT_AT, drift_kind="feature"
    )
    shifted = list(second_run.valid)[SHIFT_AT:]
    reports = _reports(kafka_bootstrap, drift_topic, len(quiet) + 3)
    assert second.proc.poll() is None, second.output()
    restored = re.search(
        r"drift state restored for partitions \[0, 1, 2\] \((\d+) events seen\)", second.output()
    )
    assert restored, second.output()[-2_000:]
    assert int(restored.group(1)) >= STATIONARY, "every event of the first run is in the restored state"

    after = reports[len(quiet) :]
    resumed = next(r for r in after if r.kind == "window")
    assert any(resumed.offsets[k].first <= last_offsets[k] for k in last_offsets), (
        "the first window after the restart holds events scored before it"
    )

    # 3. the shift 1,500 events after the restart: a detector fires, then a window names the features
    alarms = [r for r in after if r.kind == "alarm"]
    assert alarms and set(a for r in alarms for a in r.alarms) <= {"salary", "loan"}
    delay = _shifted_seen(kafka_bootstrap, worker_topics.input, set(shifted), alarms[0])
    print(f"feature shift: first detector ({alarms[0].alarms}) {delay} events after the shift")
    assert 0 < delay <= 1_500, f"the first detector fired {delay} events after the shift"
    drifted = [r for r in after if r.kind == "window" and r.verdict == "drift"]
    assert drifted and {"salary", "loan"} <= set(drifted[-1].drifted)
    assert drifted[-1].thresholds == {"psi": 0.25, "distance": 0.1}
    assert '"drift_verdict":"drift"' in second.output()


def _shifted_seen(kafka_bootstrap: str, topic: str, shifted: set[str], alarm: DriftReport) -> int:
    """How many shifted events had been scored when the detector fired: per partition, those from
    the first shifted offset to the alarm window's last (partitions are read unevenly, so the
    events scored in all is not the event produced at that moment)."""
    first: dict[str, int] = {}
    for m in read_topic(kafka_bootstrap, topic, STATIONARY + 6_000, 60):
        if orjson.loads(m.value())["event_id"] in shifted:
            where = f"{topic}[{m.partition()}]"
            first[where] = min(first.get(where, m.offset()), m.offset())
    return sum(max(0, o.last + 1 - first[k]) for k, o in alarm.offsets.items() if k in first)
