"""The folder registry's aliases: promote writes a pointer, a source follows it, list shows it."""

from __future__ import annotations

import asyncio
import json

import pytest
from fuzz.outcomes import make_pipeline
from model_versions import NAME, add_version, registry

from stream.errors import ModelError
from stream.lifecycle.folder import FolderSource, aliases, listing, set_alias
from stream.lifecycle.uris import parse
from stream.worker.metrics import WorkerMetrics
from stream.worker.reload import ModelWatcher


@pytest.fixture
def root(tmp_path):
    return registry(tmp_path)


def test_promote_points_the_alias_and_the_source_follows(root):
    source = FolderSource(parse(f"{root}/{NAME}@champion"))
    with pytest.raises(ModelError, match=r"no alias 'champion'.*streamscore model promote loan-approval"):
        source.current()
    assert set_alias(root, NAME, "champion", "1") is None
    add_version(root, "2")
    assert source.current() == "1", "a new version is not the champion until promoted"
    assert set_alias(root, NAME, "champion", "2") == "1"
    assert source.current() == "2" and aliases(root, NAME) == {"champion": "2"}
    assert source.load("2").card.version == "2"
    assert any(line.startswith(f"{NAME} 2 ") and line.endswith("@champion") for line in listing(root))


def test_a_version_that_fails_its_checks_is_not_promoted(root):
    add_version(root, "2", tamper=True)
    set_alias(root, NAME, "champion", "1")
    with pytest.raises(ModelError, match="changed or corrupted"):
        set_alias(root, NAME, "champion", "2")
    assert aliases(root, NAME) == {"champion": "1"}


def test_a_broken_pointer_file_says_what_to_do(root):
    (root / NAME / "aliases.json").write_text(json.dumps(["2"]))
    with pytest.raises(ModelError, match="not a JSON object of alias -> version"):
        aliases(root, NAME)


def test_the_watcher_follows_an_alias(root):
    set_alias(root, NAME, "champion", "1")
    pipeline = make_pipeline(root)
    metrics = WorkerMetrics()
    watcher = ModelWatcher(FolderSource(parse(f"{root}/{NAME}@champion")), pipeline, metrics, "1")
    add_version(root, "2")
    assert asyncio.run(watcher.poll()) is None, "version 2 exists, the alias still points at 1"
    set_alias(root, NAME, "champion", "2")
    card = asyncio.run(watcher.poll())
    assert card is not None and card.version == "2" and pipeline.model.card.version == "2"


def test_the_challenger_follows_its_alias_and_a_bad_one_is_refused(root, caplog):
    from fuzz.outcomes import TOPICS
    from model_versions import WIDTH, linear

    from stream.scoring.model import load
    from stream.scoring.pipeline import Pipeline

    add_version(root, "2")
    set_alias(root, NAME, "challenger", "1")
    pipeline = Pipeline(
        load(root, NAME, "1"), TOPICS, pii_key=b"k", max_message_bytes=65_536,
        scorer={"version": "0", "revision": None, "worker_id": "h:1"}, challenger=load(root, NAME, "1"),
    )  # fmt: skip
    metrics = WorkerMetrics()
    source = FolderSource(parse(f"{root}/{NAME}@challenger"))
    watcher = ModelWatcher(source, pipeline, metrics, "1", role="challenger")
    set_alias(root, NAME, "challenger", "2")
    card = asyncio.run(watcher.poll())
    assert card is not None and pipeline.challenger.card.version == "2" and pipeline.model.card.version == "1"
    assert pipeline._offered.challenge is not None and pipeline._offered.challenge.model.card.version == "2"

    # a version reading a feature the champion's events lack reads it from the events itself
    add_version(root, "3", linear(width=WIDTH + 1), edit_card=lambda c: c["features"].append(
        {"name": "extra", "type": "number"}
    ))  # fmt: skip
    set_alias(root, NAME, "challenger", "3")
    assert asyncio.run(watcher.poll()) is not None and pipeline.challenger.card.version == "3"
    set_alias(root, NAME, "challenger", "2")
    assert asyncio.run(watcher.poll()) is not None and pipeline.challenger.card.version == "2"

    # a version answering another question (a multiclass model beside a binary one) is refused
    add_version(root, "4", linear(width=WIDTH), edit_card=lambda c: c.update(
        output={"task": "multiclass", "tensor": "probabilities", "classes": ["deny", "approve"]}
    ))  # fmt: skip
    set_alias(root, NAME, "challenger", "4")
    assert asyncio.run(watcher.poll()) is None
    assert pipeline.challenger.card.version == "2", "the previous challenger keeps scoring"
    assert metrics.registry.get_sample_value("streamscore_challenger_refused_total") == 1
    assert "challenger loan-approval/4 refused at reload, loan-approval/2 keeps serving" in caplog.text
