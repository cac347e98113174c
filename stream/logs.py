"""Structured logs: one JSON object per line on stderr, for every logger in the worker.

Fields: ``ts``, ``level``, ``logger``, ``message``, ``pid``, then whatever the call passed as
``extra`` (for example ``topic``, ``partition``, ``offset``, ``model``), and ``exc`` with a traceback.
The hot path logs nothing per event at the default level.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        doc.update((k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """A ``dictConfig`` document: JSON to stderr; streamscore at ``level``, the rest at warn."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {"streamscore": {"level": level.upper().replace("WARN", "WARNING")}},
    }
