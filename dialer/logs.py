"""Log output: Celery's text lines by default, or JSON lines with ``DIALER_LOG_FORMAT=json``.

A JSON line carries the record's ``call_id`` (every dial log passes one in ``extra``) so a
log pipeline can follow one call across the worker, the reconciler and the agent. Phone
numbers are masked where they are logged, never here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

#: Fields of a LogRecord that are not ``extra`` passed by the caller.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName,
        }
        line.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def use_json(logger: logging.Logger) -> None:
    """Make every handler of ``logger`` write JSON lines."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
