"""Logs are JSON Lines on stderr with a stable event name and the extra fields."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from common.log import JsonFormatter


def test_json_formatter_event_and_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "facegate.test",
            "levelname": "WARNING",
            "msg": "model_file_invalid",
            "model": "sface-2021dec",
        }
    )
    out = json.loads(JsonFormatter().format(record))
    assert out["event"] == "model_file_invalid" and out["model"] == "sface-2021dec"
    assert out["level"] == "warning" and out["logger"] == "facegate.test" and out["ts"].endswith("+00:00")


def test_json_formatter_includes_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "worker_failed", None, sys.exc_info())
    out = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in out["exc"]


def test_json_formatter_non_serialisable_field_is_stringified(capsys: pytest.CaptureFixture[str]) -> None:
    record = logging.makeLogRecord({"msg": "e", "path": object()})
    assert "object object" in json.loads(JsonFormatter().format(record))["path"]
