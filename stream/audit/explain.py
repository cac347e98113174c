"""``streamscore explain``: why one event got its score, re-computed from the records.

By ``event_id``: its provenance record (in the partition its id hashes to, from ``since``), the
input at the offset it names, the model of its sha256; if there is none, its dead letter. By input
position: the input record, then the provenance that names that position, or its dead letter. An
id no event can have (empty, not UTF-8, with control characters) is refused before anything is read.
A scored event shows every feature's exact contribution to the score's margin, largest first, with
the expected value they start from and the margin they add up to, computed again whether or not
the worker wrote reason codes; a model that cannot be explained says why in one line.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Literal

from confluent_kafka import Message
from pydantic import BaseModel, TypeAdapter, ValidationError

from stream.audit.errors import AuditError, InputGone, ModelGone, NotFound
from stream.audit.formats import Formats
from stream.audit.lookup import Reader
from stream.audit.rescore import Rescorer
from stream.contracts import DeadLetter, InputId, ModelCard, Provenance
from stream.kafka.config import client_config
from stream.messages import timestamp_ms
from stream.scoring.headers import TRACEPARENT, TRACESTATE
from stream.settings import Settings
from stream.terminal import printable

__all__ = ["Explanation", "check_event_id", "explain", "render"]
_EVENT_ID: TypeAdapter[str] = TypeAdapter(InputId)


class Explanation(BaseModel):
    """What ``explain`` found (``--json`` prints it)."""

    outcome: Literal["scored", "dead_letter"]
    event_id: str | None
    input: dict[str, Any]  # topic, partition, offset, timestamp_ms, key, trace headers
    envelope: dict[str, Any] | None = None  # event_id, occurred_at, entity_id
    record: str  # where the provenance record or dead letter is: topic[partition]@offset
    features: dict[str, float | str] | None = None  # as the model saw them; personal ones hashed
    model: dict[str, str] | None = None
    role: str | None = None
    code: dict[str, str | None] | None = None
    times: dict[str, dt.datetime] | None = None
    score_then: float | None = None
    score_now: float | None = None
    label_now: str | None = None
    bit_exact: bool | None = None
    difference: str | None = None
    dead_letter: dict[str, Any] | None = None  # stage, reason, exception
    contributions: dict[str, float] | None = None  # every feature's, largest magnitude first
    expected_value: float | None = None  # what the contributions start from
    margin: float | None = None  # expected_value plus the contributions: the score's raw margin
    unexplained: str | None = None  # why there are no contributions, when there are none


def _where(m: Message) -> str:
    return f"{m.topic()}[{m.partition()}]@{m.offset()}"


def _input(m: Message) -> dict[str, Any]:
    key = m.key()
    trace = {k: v.decode(errors="replace") for k, v in m.headers() or () if k in (TRACEPARENT, TRACESTATE)}
    return {
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp_ms": timestamp_ms(m),
        "key": key.decode(errors="replace") if key is not None else None,
        **trace,
    }


def check_event_id(event_id: str) -> None:
    """:class:`AuditError` unless ``event_id`` is an id the Event contract accepts."""
    if not event_id:
        raise AuditError(
            "the event id is empty: give an event's id, or --partition and --offset of its input"
        )
    try:
        event_id.encode()
    except UnicodeEncodeError:  # undecodable bytes of an argument
        raise AuditError(f"event id {os.fsencode(event_id)!r} is not UTF-8 text: no event has it") from None
    try:
        _EVENT_ID.validate_python(event_id)
    except ValidationError as exc:
        shown = repr(event_id[:64]) + ("..." if len(event_id) > 64 else "")
        raise AuditError(f"no event can have the id {shown}: {exc.errors()[0]['msg']}") from None


def explain(
    settings: Settings,
    pii_key: bytes,
    since_ms: int | None,
    event_id: str | None = None,
    position: tuple[str, int, int] | None = None,
) -> Explanation:
    """Explain ``event_id``, or the input at ``position`` (topic, partition, offset)."""
    if event_id is not None:
        check_event_id(event_id)
    reader = Reader(client_config(settings))
    try:
        rescorer = Rescorer(settings.model_dir, pii_key, Formats(settings))
        return _explain(reader, rescorer, settings, since_ms, event_id, position)
    finally:
        reader.close()


def _explain(
    reader: Reader,
    rescorer: Rescorer,
    settings: Settings,
    since_ms: int | None,
    event_id: str | None,
    position: tuple[str, int, int] | None,
) -> Explanation:
    found: Message | None = None
    if position is not None:
        topic, partition, offset = position
        found = reader.read_at(topic, partition, [offset]).get(offset)
        if found is None:
            raise NotFound(f"no record at {topic}[{partition}]@{offset}")
        event_id = rescorer.formats.event_id(found)
    candidates = reader.provenance(settings.provenance_topic, event_id, since_ms) if event_id else []
    records = [(m, rescorer.formats.provenance(m.value())) for m in candidates]
    matching = [
        (m, r)
        for m, r in records
        if isinstance(r, Provenance)
        and (position is None or (r.input.topic, r.input.partition, r.input.offset) == position)
    ]
    live = [(m, r) for m, r in matching if r.role != "shadow"]  # a challenger's shadow answer is the other
    if matching:
        return _scored(reader, rescorer, *(live or matching)[-1], found)
    dead = reader.dead_letters(settings.dlq_topic, since_ms, event_id=event_id, origin=position)
    if dead:
        return _dead(dead[-1], event_id)
    what = f"event {event_id}" if position is None else f"input {position[0]}[{position[1]}]@{position[2]}"
    raise NotFound(
        f"no provenance record or dead letter for {what} in {settings.provenance_topic} and "
        f"{settings.dlq_topic}{' since the time given' if since_ms is not None else ''}: check the id, or "
        "widen --since"
    )


def _scored(
    reader: Reader,
    rescorer: Rescorer,
    record: Message,
    provenance: Provenance,
    found: Message | None,
) -> Explanation:
    ref = provenance.input
    if found is None:
        try:
            found = reader.read_at(ref.topic, ref.partition, [ref.offset]).get(ref.offset)
        except InputGone as exc:
            raise InputGone(
                f"{exc}; its provenance ({_where(record)}) says score {provenance.score!r} by "
                f"{provenance.model.name}/{provenance.model.version}, but it cannot be re-scored"
            ) from None
        if found is None:
            raise InputGone(f"input {ref.topic}[{ref.partition}]@{ref.offset} is not in the topic")
    checked = rescorer.rescore([(provenance, found)], explain=True)[0]
    if checked.missing:
        raise ModelGone(checked.missing)
    if checked.event is None or checked.row is None or checked.card is None:
        raise AuditError(f"input {_where(found)} cannot be re-scored: {checked.detail}")
    card, event = checked.card, checked.event
    hashed = (checked.rebuilt or {}).get("personal", {})
    features = {
        f.name: hashed.get(f.name, "hashed") if f.personal else _shown(f.type, v, event.features.get(f.name))
        for f, v in zip(card.features, checked.row, strict=True)
    }
    return Explanation(
        outcome="scored",
        event_id=provenance.event_id,
        input=_input(found),
        envelope={"event_id": event.event_id, "occurred_at": event.occurred_at, "entity_id": event.entity_id},
        record=_where(record),
        features=features,
        model=provenance.model.model_dump(),
        role=provenance.role,
        code=provenance.scorer.model_dump(),
        times={
            "received_at": provenance.received_at,
            "scored_at": provenance.scored_at,
            "emitted_at": provenance.emitted_at,
        },
        score_then=provenance.score,
        score_now=checked.score,
        label_now=_label(card, checked.score),
        bit_exact=checked.exact,
        difference=checked.detail or None,
        contributions=_by_magnitude(checked.contributions),
        expected_value=checked.expected_value,
        margin=checked.margin,
        unexplained=checked.unexplained or None,
    )


def _label(card: ModelCard, score: float | None) -> str | None:
    """A binary classifier's label of ``score`` (None for other tasks, or without a score)."""
    if score is None or card.output.task != "binary":
        return None
    out = card.output
    return out.positive_label if score >= out.threshold else out.negative_label


def _by_magnitude(contributions: dict[str, float] | None) -> dict[str, float] | None:
    if contributions is None:
        return None
    return dict(sorted(contributions.items(), key=lambda item: -abs(item[1])))


def _dead(m: Message, event_id: str | None) -> Explanation:
    headers = DeadLetter.from_headers(m.headers())
    origin = {"topic": headers.topic, "partition": headers.partition, "offset": headers.offset}
    key = m.key()
    return Explanation(
        outcome="dead_letter",
        event_id=headers.event_id or event_id,
        input={
            **origin,
            "timestamp_ms": headers.timestamp_ms,
            "key": key.decode(errors="replace") if key is not None else None,
        },
        record=_where(m),
        dead_letter={"stage": headers.stage, "reason": headers.reason, "exception": headers.exception_class},
    )


def render(x: Explanation) -> str:
    """The explanation as aligned text lines; what came from records is escaped (:func:`printable`)."""
    return "\n".join(map(printable, _lines(x)))


def _lines(x: Explanation) -> list[str]:
    i = x.input
    lines = [f"event      {x.event_id or '(no readable id)'}"]
    where = f"{i['topic']}[{i['partition']}]@{i['offset']}"
    stamp = f"  timestamp_ms {i['timestamp_ms']}" if i.get("timestamp_ms") is not None else ""
    lines.append(f"input      {where}  key {i.get('key')}{stamp}")
    lines += [f"           {k} {i[k]}" for k in (TRACEPARENT, TRACESTATE) if k in i]
    if x.outcome == "dead_letter":
        d = x.dead_letter or {}
        lines += [f"outcome    dead-lettered at stage {d['stage']}: {d['reason']}", f"record     {x.record}"]
        return lines
    env = x.envelope or {}
    lines.append(f"envelope   occurred_at {env['occurred_at'].isoformat()}  entity_id {env['entity_id']}")
    shown = [f"{k}={v!r}" if isinstance(v, float) else f"{k}=hash:{v}" for k, v in (x.features or {}).items()]
    lines.append("features   " + "  ".join(shown))
    m, code = x.model or {}, x.code or {}
    lines.append(f"model      {m['name']}/{m['version']}  sha256 {m['sha256']}  role {x.role}")
    lines.append(
        f"code       streamscore {code['version']}  revision {code['revision']}  worker {code['worker_id']}"
    )
    lines.append(f"provenance {x.record}  scored_at {(x.times or {})['scored_at'].isoformat()}")
    verdict = "bit-exact" if x.bit_exact else f"DIFFERS ({x.difference})"
    lines.append(f"score      then {x.score_then!r}  now {x.score_now!r} ({x.label_now})  {verdict}")
    return lines + _contribution_lines(x)


def _contribution_lines(x: Explanation) -> list[str]:
    """Every feature's contribution, largest first, between the expected value and the margin."""
    if x.contributions is None:
        return [f"reasons    none: {x.unexplained or 'not computed'}"]
    width = max((len(name) for name in x.contributions), default=0)
    lines = [f"reasons    expected value {x.expected_value!r}, then each feature's contribution:"]
    lines += [f"           {name:<{width}}  {value:+.6g}" for name, value in x.contributions.items()]
    lines.append(f"           margin {x.margin!r} (the expected value plus the contributions)")
    return lines


def _shown(kind: str, read: float, sent: object) -> object:
    """A feature as the model read it: a number as float32, a string as it came."""
    return sent if kind == "string" else float(read)
