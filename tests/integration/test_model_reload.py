"""A running worker serves a new model version without a restart, and refuses a tampered one.

Events flow the whole time: version 1 serves; a tampered version 2 appears and is refused (v1 keeps
serving); a good version 3 appears and serves from the next batch on. Every event is scored once.
"""

from __future__ import annotations

import time

import orjson
from conftest import Traffic, assert_versions_only_rise, read_topic, scrape
from model_versions import add_version, registry

from stream.kafka.topics import ensure_topics
from stream.tools.broker import free_port


def test_a_new_version_is_served_and_a_tampered_one_refused(
    kafka_bootstrap, worker_topics, start_worker, tmp_path
):
    root = registry(tmp_path / "registry")
    ensure_topics(kafka_bootstrap, {worker_topics.input: 3})
    port = free_port()
    worker = start_worker(model_dir=root, model_reload_s=0.5, batch_size=16, metrics_port=port)

    with Traffic(kafka_bootstrap, worker_topics.input, rate=100, seed=71) as traffic:
        read_topic(kafka_bootstrap, worker_topics.predictions, 50, timeout=60, settle=0)

        add_version(root, "2", tamper=True)
        worker.wait_for("loan-approval/2 refused at reload, loan-approval/1 keeps serving")
        time.sleep(2)  # four more polls: an unchanged bad version is not tried again
        before_v3 = traffic.count
        v1_only = read_topic(kafka_bootstrap, worker_topics.predictions, before_v3, timeout=60, settle=0)
        assert {orjson.loads(m.value())["model_version"] for m in v1_only} == {"1"}

        v3 = orjson.loads((add_version(root, "3") / "card.json").read_bytes())
        worker.wait_for("serving model loan-approval/3")
        after_swap = traffic.count
        time.sleep(2)
    sent = traffic.sent
    scraped = scrape(port)
    output = worker.output()
    assert worker.proc.poll() is None, output

    predictions = read_topic(kafka_bootstrap, worker_topics.predictions, sent.count, timeout=60)
    provenance = read_topic(kafka_bootstrap, worker_topics.provenance, sent.count, timeout=60)
    docs = [orjson.loads(m.value()) for m in predictions]
    assert sorted(d["event_id"] for d in docs) == sorted(sent.valid), "every event scored exactly once"

    assert_versions_only_rise(predictions, docs)
    assert {d["model_version"] for d in docs} == {"1", "3"}, "the tampered version 2 never served"
    late = list(sent.valid)[after_swap:]
    assert late and {d["model_version"] for d in docs if d["event_id"] in set(late)} == {"3"}

    shas = {
        orjson.loads(m.value())["model"]["version"]: orjson.loads(m.value())["model"]["sha256"]
        for m in provenance
    }
    v1 = orjson.loads((root / "loan-approval" / "1" / "card.json").read_bytes())
    assert shas == {"1": v1["sha256"], "3": v3["sha256"]} and v1["sha256"] != v3["sha256"]

    info = {
        dict(labels)["version"]: v
        for (name, labels), v in scraped.items()
        if name == "streamscore_model_info"
    }
    assert info == {"3": 1.0}
    assert scraped[("streamscore_model_reload_failures_total", ())] == 1.0
    assert output.count("refused at reload") == 1 and "changed or corrupted" in output
