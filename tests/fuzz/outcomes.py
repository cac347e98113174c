"""The pipeline's invariant under hostile input, shared by the hypothesis tests and the atheris harness.

Every input message yields exactly one outcome: a prediction and its provenance (both valid against
their contracts), or a dead letter with a stage and a reason, carrying the original bytes. Never
an exception.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from stream.contracts import DeadLetter, Prediction, Provenance
from stream.messages import inbound
from stream.model import load
from stream.pipeline import Pipeline, Topics
from stream.producer import events

MODELS = Path(__file__).resolve().parents[2] / "models"
TOPICS = Topics("predictions", "provenance", "events.dlq")


def make_pipeline(
    root: Path = MODELS,
    max_message_bytes: int = 65_536,
    clock: Callable[[], float] = time.time,
    **limits: int,
) -> Pipeline:
    """A pipeline serving the latest loan-approval of registry ``root``."""
    return Pipeline(
        load(root, "loan-approval"),
        TOPICS,
        pii_key=b"test-key",
        scorer={"version": "0", "revision": None, "worker_id": "host:1"},
        max_message_bytes=max_message_bytes,
        clock=clock,
        **limits,
    )


def valid_events(n: int, seed: int = 0) -> list[dict]:
    return [orjson.loads(value) for _, value, *_ in itertools.islice(events(seed), n)]


def check(pipeline: Pipeline, values: Sequence[bytes | None]) -> list[str]:
    """Process ``values`` as one batch; fail unless each has exactly one well-formed outcome.

    Returns each input's outcome: ``scored`` or the dead letter's stage.
    """
    batch = [inbound(v, b"k", "events", 0, offset) for offset, v in enumerate(values)]
    result = pipeline.process(batch)
    outcomes: dict[int, str] = {}
    predictions: dict[str, Prediction] = {}
    for record in result.records:
        if record.topic == TOPICS.predictions:
            p = Prediction.model_validate_json(record.value)
            predictions[p.event_id] = p
            continue
        if record.topic == TOPICS.provenance:
            prov = Provenance.model_validate_json(record.value)
            offset, kind = prov.input.offset, "scored"
            assert predictions.pop(prov.event_id).model_version == prov.model.version
        else:
            assert record.topic == TOPICS.dead_letters, record.topic
            dead = DeadLetter.from_headers(record.headers)
            offset, kind = dead.offset, dead.stage
            assert dead.reason and record.value == values[offset], "a dead letter keeps the original bytes"
        assert offset not in outcomes, f"offset {offset}: {outcomes[offset]} and {kind}"
        outcomes[offset] = kind
    assert not predictions, "a prediction without its provenance"
    assert sorted(outcomes) == list(range(len(values))), "an input without an outcome"
    assert result.scored + sum(result.dead_letters.values()) == len(values)
    return [outcomes[offset] for offset in range(len(values))]


def outcome(pipeline: Pipeline, value: bytes | None) -> tuple[str, str]:
    """(``scored`` or the dead letter's stage, its reason) of one message."""
    (record, *_) = pipeline.process([inbound(value)]).records
    if record.topic != TOPICS.dead_letters:
        return "scored", ""
    dead = DeadLetter.from_headers(record.headers)
    return dead.stage, dead.reason


def seeds() -> list[bytes]:
    """Starting inputs for a fuzzer: a valid event, and the edge cases it should grow from."""
    event = orjson.dumps(valid_events(1)[0])
    return [
        event,
        event.replace(b'"loan":', b'"loan":NaN,"x":', 1),
        event.replace(b'"salary":', b'"salary":1e999,"y":', 1),
        b"\xef\xbb\xbf" + event,
        event.replace(b'"event_id":"', b'"event_id":"\\ud800', 1),
        event.replace(b'"entity_id":"', b'"entity_id":"\xc0\xaf\x00', 1),
        b'{"event_id":"x","features":' + b"[" * 300,
    ]
