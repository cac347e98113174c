"""Logs: one JSON object per line on stderr, or readable text on a terminal, for every logger in a worker.

JSON fields: ``ts``, ``level``, ``logger``, ``message``, ``pid``, then whatever the call passed as
``extra`` (for example ``topic``, ``partition``, ``offset``, ``model``), and ``exc`` with a traceback.
Text (``STREAMSCORE_LOG_FORMAT=text``, or ``auto`` when stderr is a terminal) carries the same.
librdkafka's lines come through the ``streamscore.kafka`` logger. A line repeated more than
``REPEATS`` times within ``REPEAT_WINDOW_S`` (the same logger, message template and first argument,
e.g. a client failing to reach a broker that has gone) is held back; the next one let through says
how many were.
The hot path logs nothing per event at the default level.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from typing import Any, Literal

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
REPEATS = 3
REPEAT_WINDOW_S = 30.0
LogFormat = Literal["auto", "json", "text"]


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        doc.update(_extra(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """``09:30:00.125 WARNING streamscore.worker [4242] message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extra = "".join(f" {k}={v}" for k, v in _extra(record).items())
        line = f"{when} {record.levelname:<7} {record.name} [{record.process}] {record.getMessage()}{extra}"
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


class Repeats(logging.Filter):
    """Holds back a line seen more than ``most`` times in ``window`` s; the next one let through says so."""

    def __init__(self, most: int = REPEATS, window: float = REPEAT_WINDOW_S) -> None:
        super().__init__()
        self.most, self.window = most, window
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}  # key -> (window start, lines)

    def filter(self, record: logging.LogRecord) -> bool:
        first = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        key = (record.name, str(record.msg), str(first))
        now = time.monotonic()
        start, count = self._seen.get(key, (now, 0))
        if now - start >= self.window:
            if count > self.most:
                record.msg = (
                    f"{record.msg} ({count - self.most} similar lines held back in {self.window:.0f} s)"
                )
            start, count = now, 0
        self._seen[key] = (start, count + 1)
        return count < self.most


def json_logs(log_format: LogFormat) -> bool:
    """JSON unless asked for text, or ``auto`` on a terminal."""
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


def logging_config(level: str, log_format: LogFormat = "auto") -> dict[str, Any]:
    """A ``dictConfig`` document: stderr, repeats held back; streamscore at ``level``, the rest at warn."""
    formatter = JsonFormatter if json_logs(log_format) else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": formatter}},
        "filters": {"repeats": {"()": Repeats}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["repeats"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {"streamscore": {"level": level.upper().replace("WARN", "WARNING")}},
    }
