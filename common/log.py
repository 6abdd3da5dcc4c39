"""Structured logging: one JSON object per line on stderr, a stable event name plus fields; secrets in
messages, fields and tracebacks are masked (common/redact.py)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from common.redact import install_redaction, redact

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

context: ContextVar[Mapping[str, str]] = ContextVar("facegate_log_context", default=MappingProxyType({}))
"""Fields added to every record logged in the current context (e.g. central's request id)."""


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON: ts, level, logger, event and every `extra` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(context.get())
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def setup_logging(level: str = "info") -> None:
    """Send every log record to stderr as JSON Lines (stdout stays clean for command output), secrets
    masked whichever logger the record comes from (uvicorn's included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    install_redaction([handler])
