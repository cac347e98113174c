"""Log lines: JSON off a terminal, text on one, and repeated lines held back."""

from __future__ import annotations

import io
import logging
import logging.config

import orjson
import pytest

from stream import logs
from stream.logs import JsonFormatter, Repeats, TextFormatter, json_logs, logging_config


def _record(msg: str, *args: object, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeated_lines_are_held_back_and_counted(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock[0])
    repeats = Repeats(most=3, window=30.0)
    passed = [
        repeats.filter(_record("Unable connect to node with id %s: %s", 1, f"try {i}")) for i in range(100)
    ]
    assert passed == [True] * 3 + [False] * 97
    assert repeats.filter(_record("Unable to update metadata from %s", [1]))  # another line: its own count
    clock[0] = 31.0
    late = _record("Unable connect to node with id %s: %s", 1, "again")
    assert repeats.filter(late)
    assert "(97 similar lines held back in 30 s)" in late.getMessage()


def test_formats():
    record = _record("scored %d", 5, name="streamscore.worker")
    record.topic = "events"
    doc = orjson.loads(JsonFormatter().format(record))
    assert doc["message"] == "scored 5" and doc["level"] == "error" and doc["topic"] == "events"
    text = TextFormatter().format(record)
    assert " ERROR   streamscore.worker [" in text and text.endswith("] scored 5 topic=events")


@pytest.mark.parametrize(("fmt", "tty", "json"), [("auto", True, False), ("auto", False, True),
                                                  ("json", True, True), ("text", False, False)])  # fmt: skip
def test_json_off_a_terminal_text_on_one(monkeypatch, fmt, tty, json):
    stream = io.StringIO()
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr(logs.sys, "stderr", stream)
    assert json_logs(fmt) is json
    config = logging_config("info", fmt)
    assert config["formatters"]["line"]["()"] is (JsonFormatter if json else TextFormatter)
    assert config["handlers"]["stderr"]["filters"] == ["repeats"]
