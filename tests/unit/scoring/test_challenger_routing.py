"""A challenger beside the champion: shadow answers on their own topic, canary by a stable hash of the key."""

from __future__ import annotations

import dataclasses
import itertools
import uuid

import numpy as np
import orjson
import pytest
from fuzz.outcomes import TOPICS
from model_versions import NAME, WIDTH, add_version, linear, registry

from stream.messages import inbound
from stream.scoring.challenger import canary_mask
from stream.scoring.model import load
from stream.scoring.pipeline import Pipeline
from stream.tools.produce import events

SHADOW = "predictions.challenger"


@pytest.fixture
def root(tmp_path):
    root = registry(tmp_path)
    add_version(root, "2")
    return root


def _pipeline(root, challenger="2", percent=0.0, champion="1"):
    return Pipeline(
        load(root, NAME, champion),
        TOPICS,
        pii_key=b"test-key",
        scorer={"version": "0", "revision": None, "worker_id": "host:1"},
        max_message_bytes=65_536,
        challenger=load(root, NAME, challenger) if challenger else None,
        shadow_topic=SHADOW,
        canary_percent=percent,
    )


def _batch(n, seed=0):
    return [
        inbound(value, key, "events", i % 3, i)
        for i, (key, value, *_) in enumerate(itertools.islice(events(seed), n))
    ]


def _docs(result, topic):
    return [orjson.loads(r.value) for r in result.records if r.topic == topic]


def test_canary_share_is_within_two_points_over_20000_keys_and_sticky():
    keys = [f"applicant-{uuid.UUID(int=i)}".encode() for i in range(20_000)]
    for percent in (5.0, 20.0, 50.0):
        share = canary_mask(keys, percent).mean() * 100
        assert abs(share - percent) <= 2.0, (percent, share)
    first = canary_mask(keys, 20.0)
    again = canary_mask(list(reversed(keys)), 20.0)[::-1]
    assert (first == again).all(), "a key's side does not depend on its batch or position"
    assert not canary_mask(keys, 0.0).any() and canary_mask(keys, 100.0).all()


def test_shadow_scores_every_event_on_its_own_topic(root):
    batch = _batch(64)
    result = _pipeline(root).process(batch)
    live, shadow = _docs(result, TOPICS.predictions), _docs(result, SHADOW)
    assert result.scored == 64 and result.shadowed == 64
    assert {d["model_version"] for d in live} == {"1"} and {d["role"] for d in live} == {"champion"}
    assert {d["model_version"] for d in shadow} == {"2"} and {d["role"] for d in shadow} == {"shadow"}
    assert sorted(d["event_id"] for d in live) == sorted(d["event_id"] for d in shadow)
    provenance = _docs(result, TOPICS.provenance)
    roles = {(d["role"], d["model"]["version"]) for d in provenance}
    assert len(provenance) == 128 and roles == {("champion", "1"), ("shadow", "2")}
    assert all(r.partition == r.source for r in result.records if r.topic == SHADOW), "input's partition"


def test_canary_answers_its_keys_live_and_the_champion_shadows_them(root):
    batch = _batch(400)
    result = _pipeline(root, percent=30.0).process(batch)
    live, shadow = _docs(result, TOPICS.predictions), _docs(result, SHADOW)
    assert result.scored == 400 and result.shadowed == 400 and len(live) == 400 and len(shadow) == 400
    keys = {orjson.loads(m.value())["event_id"]: m.key() for m in batch}
    expected = dict(zip(keys, canary_mask(list(keys.values()), 30.0), strict=True))
    for d in live:
        assert d["role"] == ("canary" if expected[d["event_id"]] else "champion")
        assert d["model_version"] == ("2" if expected[d["event_id"]] else "1")
    for d in shadow:
        assert d["model_version"] == ("1" if expected[d["event_id"]] else "2") and d["role"] == "shadow"
    assert 0.2 < np.mean(list(expected.values())) < 0.4


def test_a_challenger_reads_its_own_features_and_its_misses_are_counted(root):
    add_version(root, "3", linear(width=WIDTH + 1), edit_card=lambda c: c["features"].append(
        {"name": "extra", "type": "number"}
    ))  # fmt: skip
    batch = _batch(8)
    carrying = {0, 3, 5}  # events that carry the feature only the challenger reads
    for i in carrying:
        event = orjson.loads(batch[i].value())
        event["features"]["extra"] = 1.5
        batch[i] = inbound(orjson.dumps(event), batch[i].key(), "events", batch[i].partition(), i)
    for percent in (0.0, 100.0):
        pipeline = _pipeline(root, challenger="3", percent=percent)
        result = pipeline.process(batch)
        assert result.scored == 8 and not result.dead_letters
        live = _docs(result, TOPICS.predictions)
        challenged = {d["event_id"] for d in live + _docs(result, SHADOW) if d["model_version"] == "3"}
        ids = [orjson.loads(m.value())["event_id"] for m in batch]
        assert challenged == {ids[i] for i in carrying}
        assert pipeline._scoring.challenge.missed == 8 - len(carrying)
        if percent:  # the challenger answers live where it can read the event, the champion elsewhere
            assert {d["event_id"] for d in live if d["role"] == "canary"} == challenged


class _NaNSession:
    """An onnxruntime session stand-in whose every probability is NaN."""

    def run(self, outputs, feeds):
        (rows,) = feeds.values()
        return [np.full((len(rows), 2), np.nan, dtype=np.float32)]


def test_a_shadow_score_that_is_no_probability_is_dropped_not_dead_lettered(root):
    pipeline = _pipeline(root)
    pipeline.challenger = dataclasses.replace(pipeline.challenger, session=_NaNSession())
    pipeline.swap(pipeline.model)  # bind the pair again, with the broken challenger
    result = pipeline.process(_batch(16))
    assert result.scored == 16 and result.shadowed == 0 and not result.dead_letters
    assert not _docs(result, SHADOW) and not _docs(result, TOPICS.dead_letters)
    assert pipeline._offered.challenge.dropped == 16
