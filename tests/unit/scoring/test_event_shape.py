"""The event's shape: each setting, its defaults, completing ids and times from the record, times in
RFC 3339 or epoch milliseconds, a dotted features path, extras counted, and the strict mode."""

from __future__ import annotations

import datetime as dt
import itertools

import orjson
import pytest
import typer
from pydantic import ValidationError

from stream.cli.common import settings as cli_settings
from stream.contracts import Event
from stream.errors import PoisonEvent, SchemaError
from stream.messages import inbound
from stream.scoring.codec import BatchDecoder
from stream.scoring.events import DEFAULT_SHAPE, FIXED_SHAPE, EventShape
from stream.settings import Settings
from stream.tools.produce import events

FEATURES = {"salary": 50_000.0, "age": 30}
WHEN = "2026-11-27T09:30:00.125Z"
MS = 1_795_771_800_125  # WHEN in epoch milliseconds
JSON = [value for _, value, *_ in itertools.islice(events(seed=3), 64)]
FLAT = EventShape("txn_id", "ts", "")


def _decode(shape: EventShape, *documents: dict) -> list:
    return BatchDecoder(65_536, shape.contract)([orjson.dumps(d) for d in documents])


def test_the_defaults_read_todays_events_as_the_fixed_contract_does():
    assert EventShape.of(Settings()) == DEFAULT_SHAPE == EventShape("event_id", "occurred_at", "features")
    assert DEFAULT_SHAPE.unknown_fields == "ignore" and FIXED_SHAPE.contract is Event
    got, fixed = BatchDecoder(65_536, DEFAULT_SHAPE.contract)(JSON), BatchDecoder(65_536)(JSON)
    assert [g.model_dump() for g in got] == [f.model_dump() for f in fixed]
    assert DEFAULT_SHAPE.ignored(got) == {} and all(DEFAULT_SHAPE.extras(g) == {} for g in got)


@pytest.mark.parametrize(
    ("env", "shape"),
    [
        ({"EVENT_ID_FIELD": "txn_id"}, EventShape(id_field="txn_id")),
        ({"EVENT_TIME_FIELD": "ts"}, EventShape(time_field="ts")),
        ({"FEATURES_FIELD": ""}, EventShape(features_field="")),
        ({"FEATURES_FIELD": "payload.inputs"}, EventShape(features_field="payload.inputs")),
        ({"UNKNOWN_FIELDS": "dead-letter"}, FIXED_SHAPE),
    ],
)
def test_each_setting_makes_its_shape(monkeypatch, env, shape):
    for name, value in env.items():
        monkeypatch.setenv(f"STREAMSCORE_{name}", value)
    assert EventShape.of(Settings()) == shape


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"EVENT_ID_FIELD": "ts", "EVENT_TIME_FIELD": "ts"}, "both 'ts'"),
        ({"EVENT_ID_FIELD": "entity_id"}, "is the entity's field"),
        ({"EVENT_TIME_FIELD": "meta.ts"}, "no '.'"),
        ({"FEATURES_FIELD": "a..b"}, "names joined by '.'"),
        ({"FEATURES_FIELD": "occurred_at.x"}, "starts at the field 'occurred_at'"),
        ({"UNKNOWN_FIELDS": "drop"}, "'ignore' or 'dead-letter'"),
        ({"EVENT_ID_FIELD": ""}, "at least 1 character"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line(monkeypatch, capsys, env, says):
    for name, value in env.items():
        monkeypatch.setenv(f"STREAMSCORE_{name}", value)
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(typer.Exit):
        cli_settings()
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and line.startswith("streamscore: error:") and says in line, line


def test_a_shape_refuses_the_names_the_settings_refuse():
    with pytest.raises(ValueError, match="both 'ts'"):
        EventShape("ts", "ts")


def test_a_flat_event_reads_its_own_names_and_its_top_level_features():
    document = {"txn_id": "t-1", "ts": MS, "entity_id": "u-9", **FEATURES, "channel": "web"}
    (event,) = _decode(FLAT, document)
    assert (event.event_id, event.entity_id) == ("t-1", "u-9")
    assert event.occurred_at == dt.datetime.fromisoformat(WHEN)
    assert event.features == {**FEATURES, "channel": "web"}
    assert FLAT.extras(event) is None, "a flat shape's extras are its features"
    assert FLAT.ignored([event, event]) == {}, "the feature reader counts the features no model reads"


@pytest.mark.parametrize("when", [WHEN, "2026-11-27T10:30:00.125+01:00", MS, float(MS)])
def test_a_time_is_rfc_3339_or_epoch_milliseconds(when):
    (event,) = _decode(EventShape(time_field="ts"), {"event_id": "e", "ts": when, "features": FEATURES})
    assert event.occurred_at == dt.datetime.fromisoformat(WHEN)


@pytest.mark.parametrize("when", ["yesterday", "2026-11-27T09:30:00", 10**17, True, {"at": 1}])
def test_a_time_that_does_not_parse_is_a_dead_letter_naming_the_field(when):
    (got,) = _decode(FLAT, {"txn_id": "t", "ts": when, **FEATURES})
    assert isinstance(got, SchemaError) and str(got).startswith("ts: "), got


def test_a_dotted_path_reads_nested_features_and_ignores_the_rest():
    shape = EventShape(features_field="payload.inputs")
    document = {
        "event_id": "e",
        "occurred_at": WHEN,
        "payload": {"inputs": FEATURES, "v": 2},
        "channel": None,
    }
    (event,) = _decode(shape, document)
    assert event.features == FEATURES
    assert shape.extras(event) == {"channel": None}, "payload is read: only channel is extra"
    (missing,) = _decode(shape, {"event_id": "e", "occurred_at": WHEN, "payload": {"v": 2}})
    assert isinstance(missing, SchemaError) and str(missing).startswith("payload.inputs: "), missing


def test_extras_are_counted_by_name():
    documents = [{"event_id": f"e{i}", "occurred_at": WHEN, "features": FEATURES} for i in range(4)]
    documents[0]["channel"] = "web"
    documents[2].update(channel=None, source="app")
    got = _decode(DEFAULT_SHAPE, *documents)
    assert not any(isinstance(g, PoisonEvent) for g in got)
    assert DEFAULT_SHAPE.ignored(got) == {"channel": 2, "source": 1}
    assert DEFAULT_SHAPE.extras(got[2]) == {"channel": None, "source": "app"}


def test_a_missing_id_is_the_records_key_else_its_topic_partition_offset():
    batch = [
        inbound(b"", b"k\xc3\xa9y", "events", 2, 40, MS),  # UTF-8
        inbound(b"", b"\xff\xfe", "events", 2, 41, MS),  # not UTF-8
        inbound(b"", b"bell\x07", "events", 2, 42, MS),  # not a valid id
        inbound(b"", None, "events", 2, 43, MS),
        inbound(b"", b"given", "events", 2, 44, MS),
    ]
    documents = [{"ts": MS, **FEATURES}] * 4 + [{"txn_id": "own", "ts": MS, **FEATURES}]
    decoded = _decode(FLAT, *documents)
    assert FLAT.completes
    FLAT.complete(batch, decoded)
    assert [e.event_id for e in decoded] == ["kéy", "events-2-41", "events-2-42", "events-2-43", "own"]
    assert all(e.features == FEATURES for e in decoded)


def test_a_missing_time_is_the_records_timestamp_and_none_is_a_dead_letter():
    batch = [inbound(b"", b"a", "events", 0, 1, MS), inbound(b"", b"b", "events", 0, 2, None)]
    decoded = _decode(FLAT, {"txn_id": "a", **FEATURES}, {"txn_id": "b", **FEATURES})
    FLAT.complete(batch, decoded)
    assert decoded[0].occurred_at == dt.datetime.fromisoformat(WHEN)
    assert isinstance(decoded[1], SchemaError)
    assert str(decoded[1]) == "ts: missing, and the record has no timestamp"


def test_completing_leaves_poison_and_complete_events_alone():
    batch = [inbound(b"", b"k", "events", 0, i, MS) for i in range(3)]
    decoded = BatchDecoder(65_536, DEFAULT_SHAPE.contract)([JSON[0], b"{", JSON[1]])
    before = list(decoded)
    DEFAULT_SHAPE.complete(batch, decoded)
    assert decoded[0] is before[0] and decoded[1] is before[1] and decoded[2] is before[2]


def test_the_strict_mode_refuses_extras_and_requires_id_and_time():
    strict = EventShape("txn_id", "ts", "features", "dead-letter")
    assert not strict.completes and strict.required == ("txn_id", "ts", "features")
    good = {"txn_id": "t", "ts": WHEN, "features": FEATURES}
    extra, no_id = _decode(strict, {**good, "channel": "web"}, {"ts": WHEN, "features": FEATURES})
    assert isinstance(extra, SchemaError) and str(extra).startswith("channel: Extra inputs"), extra
    assert isinstance(no_id, SchemaError) and str(no_id).startswith("txn_id: Field required"), no_id
    (fixed,) = BatchDecoder(65_536, FIXED_SHAPE.contract)([orjson.dumps({**orjson.loads(JSON[0]), "x": 1})])
    assert isinstance(fixed, SchemaError) and str(fixed).startswith("x: Extra inputs"), fixed


def test_the_contract_is_built_once_per_shape():
    assert EventShape("txn_id", "ts", "").contract is FLAT.contract
    assert FLAT.contract is not DEFAULT_SHAPE.contract
