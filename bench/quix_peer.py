"""The Quix Streams peer of the ladder: the scorer a user would write with Quix Streams instead.

Written the way Quix's documentation shows (``Application``, ``app.topic``, ``app.dataframe``,
``sdf.apply`` -> ``to_topic``), doing streamscore's work one message at a time: pydantic
validation of the event, one onnxruntime run on its one row, then a prediction and a provenance
record of the same shape and size as streamscore's (prediction keyed like its input, provenance
keyed by ``event_id``). The model is read from the same registry folder, with the same session
options as streamscore's (one thread, no spinning), so the difference measured is the framework's.

It runs from a venv of its own (``make quix-venv``: quixstreams pins an older confluent-kafka), so
it imports nothing from ``stream``; the few lines it needs (the event contract, the card's feature
order, the keyed hash) are repeated here. Settings come from the same environment as the other
rungs: ``KAFKA_BOOTSTRAP_SERVERS``, ``STREAMSCORE_APP_ID`` (consumer group), the topic names,
``STREAMSCORE_PROCESSING_GUARANTEE``, ``STREAMSCORE_MODEL_DIR``/``_NAME`` and ``STREAMSCORE_PII_KEY``.
"""

import datetime as dt
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from quixstreams import Application, message_context


class Event(BaseModel):
    """streamscore's input contract (``stream.contracts.Event``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=256)
    occurred_at: AwareDatetime
    entity_id: str | None = Field(None, min_length=1, max_length=256)
    features: dict[str, Any]


def _latest(root: Path) -> Path:
    return max((p for p in root.iterdir() if (p / "card.json").is_file()), key=lambda p: int(p.name))


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path.read_bytes(), options, providers=["CPUExecutionProvider"])


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def main() -> None:
    env = os.environ
    folder = _latest(
        Path(env.get("STREAMSCORE_MODEL_DIR", "models")) / env.get("STREAMSCORE_MODEL_NAME", "loan-approval")
    )
    card = json.loads((folder / "card.json").read_text())
    session = _session(folder / "model.onnx")
    names = [f["name"] for f in card["features"]]
    personal = [(f["name"], i) for i, f in enumerate(card["features"]) if f["personal"]]
    output = card["output"]
    tensor, inp, positive = output["tensor"], card["input_tensor"], output["positive_index"]
    threshold, labels = output["threshold"], (output["negative_label"], output["positive_label"])
    model = {"name": card["name"], "version": card["version"], "sha256": card["sha256"]}
    scorer = {
        "version": "quixstreams",
        "revision": None,
        "worker_id": f"{socket.gethostname()}:{os.getpid()}",
    }
    key = env.get("STREAMSCORE_PII_KEY", "streamscore-development-key").encode()

    def keyed_hash(data: bytes) -> str:
        return hashlib.blake2b(data, digest_size=16, key=key).hexdigest()

    app = Application(
        broker_address=env["KAFKA_BOOTSTRAP_SERVERS"],
        consumer_group=env.get("STREAMSCORE_APP_ID", "quix-scorer"),
        auto_offset_reset="earliest",
        processing_guarantee=env.get("STREAMSCORE_PROCESSING_GUARANTEE", "at_least_once").replace("_", "-"),
        loglevel="WARNING",
    )
    events = app.topic(env.get("STREAMSCORE_INPUT_TOPIC", "events"), value_deserializer="json")
    predictions = app.topic(env.get("STREAMSCORE_PREDICTION_TOPIC", "predictions"), value_serializer="json")
    provenance = app.topic(
        env.get("STREAMSCORE_PROVENANCE_TOPIC", "provenance"),
        key_serializer="string",
        value_serializer="json",
    )

    def score(value: dict, _key: bytes, timestamp: int, _headers: object) -> dict:
        received_at = _now()
        event = Event.model_validate(value)
        row = np.array([[event.features[n] for n in names]], dtype=np.float32)
        p = float(session.run([tensor], {inp: row})[0][0, positive])
        scored_at = _now()
        occurred_at = event.occurred_at.isoformat()
        ctx = message_context()
        return {
            "prediction": {
                "event_id": event.event_id,
                "entity_id": event.entity_id,
                "score": p,
                "label": labels[p >= threshold],
                "threshold": threshold,
                "model_name": model["name"],
                "model_version": model["version"],
                "role": "champion",
                "occurred_at": occurred_at,
                "scored_at": scored_at,
            },
            "provenance": {
                "event_id": event.event_id,
                "score": p,
                "input": {
                    "topic": ctx.topic,
                    "partition": ctx.partition,
                    "offset": ctx.offset,
                    "timestamp_ms": timestamp,
                },
                "model": model,
                "role": "champion",
                "feature_hash": keyed_hash(row[0].tobytes()),
                "personal": {n: keyed_hash(n.encode() + b"=" + row[0, i].tobytes()) for n, i in personal},
                "scorer": scorer,
                "occurred_at": occurred_at,
                "received_at": received_at,
                "scored_at": scored_at,
                "emitted_at": _now(),
            },
        }

    sdf = app.dataframe(events).apply(score, metadata=True)
    sdf.apply(lambda r: r["prediction"]).to_topic(predictions)
    sdf.apply(lambda r: r["provenance"]).to_topic(provenance, key=lambda r: r["event_id"])
    app.run()


if __name__ == "__main__":
    main()
