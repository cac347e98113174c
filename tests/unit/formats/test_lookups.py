"""A registry that hangs, lies or fails, against the decoder and the start-up a worker builds.

The stand-in registry (``tests/standin_registry.py``) runs on loopback. A lookup that hangs or
trickles is given up after ``STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S``; an answer that is not a
registry's is one error naming the registry: not the message's fault, so not a dead letter.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import MODELS
from standin_registry import StandInRegistry

from stream.errors import ConfigError, DecodeError, StreamscoreError
from stream.formats.events import event_serializer_for
from stream.formats.startup import event_schema, wire_codecs
from stream.scoring.model import load_card, resolve
from stream.settings import Settings
from stream.tools.produce import events

CARD = load_card(resolve(MODELS, "loan-approval"))
AVRO = event_schema("avro", CARD)
VALUE = next(events(seed=1))[1]
DEADLINE_S = 20.0  # liveness only: the lookups are bounded at 1 s


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result, or the exception it raised; fails if it is still running after ``seconds``."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting for the registry after {seconds:g} s"
    return outcome[0]


@pytest.fixture
def registry() -> Iterator[StandInRegistry]:
    with StandInRegistry() as standin:
        standin.schemas[1] = (AVRO.schema_str, "AVRO")
        standin.subjects["events-value"] = 1
        yield standin


def _settings(registry: StandInRegistry, **more: Any) -> Settings:
    return Settings(
        input_format="avro", schema_registry_url=registry.url, schema_registry_timeout_s=1.0, **more
    )


def _decoder(registry: StandInRegistry, **more: Any) -> Callable[[list[bytes]], list]:
    decoder, _ = wire_codecs(_settings(registry, **more), CARD)
    assert decoder is not None
    return decoder


def _message(schema_id: int) -> bytes:
    return event_serializer_for("avro", schema_id, AVRO.schema_str)(VALUE)


def test_a_registry_that_answers_decodes_and_an_unknown_id_is_a_dead_letter(registry):
    decoder = _decoder(registry)
    scored, unknown = decoder([_message(1), _message(6)])
    assert not isinstance(scored, DecodeError)
    assert isinstance(unknown, DecodeError) and "schema id 6 is not in the registry" in str(unknown)


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("hang", "no answer within 1 s (STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S)"),
        ("trickle", "no answer within 1 s (STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S)"),
        ("garbage", "not a schema registry's answer"),
        ("error", "HTTP 500"),
    ],
)
def test_a_failing_registry_in_the_loop_is_one_error_naming_it_not_a_dead_letter(registry, mode, says):
    decoder = _decoder(registry)
    registry.mode = mode
    failed = within(DEADLINE_S, lambda: decoder([_message(1), _message(7)]))
    assert isinstance(failed, StreamscoreError) and not isinstance(failed, DecodeError), failed
    message = str(failed)
    assert f"schema registry {registry.url}" in message and "schema id 7" in message, message
    assert says in message and "\n" not in message, message
    registry.mode = "serve"
    (after,) = decoder([_message(7)])
    assert isinstance(after, DecodeError) and "schema id 7 is not in the registry" in str(after)
    asked = [path for _, path in registry.requests if path.startswith("/schemas/ids/")]
    assert asked == ["/schemas/ids/7"] * 2, "the failed lookup is asked again, not remembered"


def test_a_schema_too_large_to_read_is_a_dead_letter_naming_the_limit(registry):
    registry.schemas[9] = (
        json.dumps({"type": "record", "name": "W", "doc": "x" * 1_000_000, "fields": []}),
        "AVRO",
    )
    decoder = _decoder(registry)
    (refused,) = decoder([_message(9)])
    assert isinstance(refused, DecodeError)
    assert "schema id 9" in str(refused) and "STREAMSCORE_SCHEMA_MAX_BYTES" in str(refused)


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("hang", "did not answer within 1 s: check STREAMSCORE_SCHEMA_REGISTRY_URL, or raise "
         "STREAMSCORE_SCHEMA_REGISTRY_TIMEOUT_S"),
        ("garbage", "is not a schema registry's answer"),
        ("error", "HTTP 500"),
    ],
)  # fmt: skip
def test_a_failing_registry_at_start_up_is_one_config_error_naming_it(registry, mode, says):
    registry.mode = mode
    failed = within(DEADLINE_S, lambda: wire_codecs(_settings(registry), CARD))
    assert isinstance(failed, ConfigError), failed
    message = str(failed)
    assert f"schema registry {registry.url}" in message and says in message, message
    assert "\n" not in message and len(message) < 400, message


def test_the_input_subjects_schema_is_held_from_start_up_whatever_the_lookups(registry):
    """A burst of unknown ids spends the lookups; the subject's own id needs none, so its events score."""
    decoder = _decoder(registry, schema_registry_lookups_per_s=1)
    decoded = decoder([_message(i) for i in range(100, 110)] + [_message(1)])
    assert all(isinstance(d, DecodeError) for d in decoded[:-1])
    assert not isinstance(decoded[-1], DecodeError), decoded[-1]
    assert registry.lookups() and len(registry.lookups()) == 1


def test_an_input_subject_schema_over_the_bounds_stops_start_up(registry):
    wide = {
        "type": "record",
        "name": "Event",
        "fields": [{"name": f"f{i}", "type": "long"} for i in range(50)],
    }
    registry.schemas[1] = (json.dumps(wide), "AVRO")
    with pytest.raises(ConfigError, match=r"id 1\) is refused: .*STREAMSCORE_SCHEMA_MAX_FIELDS"):
        wire_codecs(_settings(registry, schema_max_fields=20), CARD)
