"""How every mmhub process logs: text lines (the default) or, with MMHUB_LOG_FORMAT=json, one JSON object per line.

A JSON line holds `time` (UTC, ISO 8601 with `Z`), `level`, `logger`, `message`, the process id, and, where the line
is about one record, `shipment_id`, `topic`, `partition` and `offset`: given with `extra=where(...)` on the call, or
for every line logged inside `logging_context(...)` (a contextvar, so concurrent tasks keep their own). An exception's
traceback is in `exc_info`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
FORMATS = ("text", "json")
CONTEXT_FIELDS = ("shipment_id", "topic", "partition", "offset")

_context: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar("mmhub_log_context", default={})


def where(
    topic: str | None = None, partition: int | None = None, offset: int | None = None, shipment_id: str | None = None
) -> dict[str, object]:
    """The `extra=` of a log call about one record: the fields that are known."""
    fields = {"topic": topic, "partition": partition, "offset": offset, "shipment_id": shipment_id}
    return {name: value for name, value in fields.items() if value is not None}


@contextmanager
def logging_context(**fields: object) -> Iterator[None]:
    """Every line logged inside (by this task) carries `fields` (any of CONTEXT_FIELDS), unless the call gives its own."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        context = _context.get()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, context.get(name))
            if value is not None:
                document[name] = value
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def log_format(environ: Mapping[str, str] | None = None) -> str:
    """MMHUB_LOG_FORMAT: `text` (the default) or `json`."""
    chosen = (os.environ if environ is None else environ).get("MMHUB_LOG_FORMAT", "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"MMHUB_LOG_FORMAT={chosen!r}; known: {', '.join(FORMATS)}")
    return chosen


def logging_config(level: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a process at `level`, in MMHUB_LOG_FORMAT (faust's worker takes it too)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format(environ) == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mmhub": formatter},
        "handlers": {"mmhub": {"class": "logging.StreamHandler", "formatter": "mmhub", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["mmhub"]},
    }


def setup_logging(level: str = "info", environ: Mapping[str, str] | None = None) -> None:
    """Configure the process's logging once, at its entry point: on stderr, in MMHUB_LOG_FORMAT. Like
    `logging.basicConfig`, nothing changes if the root logger already has a handler (a test harness's)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format(environ) == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
