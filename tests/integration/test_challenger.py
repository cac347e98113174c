"""A challenger beside the champion in a real worker: shadow on its own topic, canary by key, refusal.

Consumers of the predictions topic never see a shadow answer; the provenance topic holds both
answers of every event, each with its role; a challenger that fails its checks leaves the champion
alone, with a log line and a metric.
"""

from __future__ import annotations

import orjson
import pytest
from conftest import read_topic, scrape
from model_versions import NAME, add_version, registry

from stream.kafka.topics import ensure_topics
from stream.scoring.challenger import canary_mask
from stream.tools.broker import free_port
from stream.tools.produce import produce

EVENTS = 400


@pytest.mark.parametrize("percent", [0.0, 30.0])
def test_shadow_and_canary(percent, kafka_bootstrap, worker_topics, start_worker, tmp_path):
    root = registry(tmp_path / "registry")
    add_version(root, "2")
    shadow_topic = f"{worker_topics.predictions}.challenger"
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    port = free_port()
    worker = start_worker(
        model_dir=root, model_version="1", challenger_uri=f"{root}/{NAME}/2", challenger_topic=shadow_topic,
        canary_percent=percent, metrics_port=port,
    )  # fmt: skip
    sent = produce(kafka_bootstrap, worker_topics.input, count=EVENTS, seed=93)
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, EVENTS, timeout=90)
    shadow = read_topic(kafka_bootstrap, shadow_topic, EVENTS, timeout=60)
    provenance = read_topic(kafka_bootstrap, worker_topics.provenance, 2 * EVENTS, timeout=60)
    scraped = scrape(port)
    assert worker.proc.poll() is None, worker.output()[-3000:]

    live = {orjson.loads(m.value())["event_id"]: (m, orjson.loads(m.value())) for m in predictions}
    other = {orjson.loads(m.value())["event_id"]: (m, orjson.loads(m.value())) for m in shadow}
    assert len(predictions) == len(shadow) == EVENTS and set(live) == set(other) == set(sent.valid)
    keys = [live[e][0].key() for e in sent.valid]
    canary = dict(zip(sent.valid, canary_mask(keys, percent), strict=True))
    for event_id, (message, doc) in live.items():
        role, version = ("canary", "2") if canary[event_id] else ("champion", "1")
        assert (doc["role"], doc["model_version"]) == (role, version), doc
        shadow_message, shadow_doc = other[event_id]
        assert shadow_doc["role"] == "shadow" and shadow_doc["model_version"] != version
        assert shadow_message.partition() == message.partition() and shadow_message.key() == message.key()
    if percent:
        share = sum(canary.values()) / EVENTS
        assert 0.2 < share < 0.4 and {d["role"] for _, d in live.values()} == {"champion", "canary"}
    roles = sorted(
        (d["role"], d["model"]["version"]) for d in map(orjson.loads, (m.value() for m in provenance))
    )
    assert len(roles) == 2 * EVENTS and {r for r, _ in roles if r != "shadow"} <= {"champion", "canary"}
    mode = "canary" if percent else "shadow"
    info = [
        labels for (name, labels), v in scraped.items() if name == "streamscore_challenger_info" and v == 1
    ]
    assert [dict(labels)["mode"] for labels in info] == [mode]
    delivered = {
        dict(labels)["topic"]: v
        for (name, labels), v in scraped.items()
        if name == "streamscore_records_delivered_total"
    }
    assert delivered.get(shadow_topic) == EVENTS and delivered.get(worker_topics.provenance) == 2 * EVENTS


def test_a_challenger_failing_its_checks_leaves_the_champion_alone(
    kafka_bootstrap, worker_topics, start_worker, tmp_path
):
    root = registry(tmp_path / "registry")
    add_version(root, "2", tamper=True)
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    port = free_port()
    worker = start_worker(
        model_dir=root, model_version="1", challenger_uri=f"{root}/{NAME}/2", metrics_port=port
    )
    sent = produce(kafka_bootstrap, worker_topics.input, count=100, seed=94)
    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, 100, timeout=90)
    provenance = read_topic(kafka_bootstrap, worker_topics.provenance, 100, timeout=60)
    assert sorted(orjson.loads(m.value())["event_id"] for m in predictions) == sorted(sent.valid)
    assert len(provenance) == 100 and {orjson.loads(m.value())["role"] for m in provenance} == {"champion"}
    assert scrape(port)[("streamscore_challenger_refused_total", ())] == 1.0
    output = worker.output()
    assert output.count("refused, the champion goes on alone") == 1 and "changed or corrupted" in output
