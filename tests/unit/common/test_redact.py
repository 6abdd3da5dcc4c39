"""Secrets never reach a log line: query strings, API keys, bearer values, URL passwords, JWTs."""

from __future__ import annotations

import logging

import pytest

from common.redact import SecretFilter, install_redaction, redact

KEY = "fg_abcdefgh_" + "S3cr3t-_" * 5 + "xyz"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhYmNkZWZnaCJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (f'127.0.0.1:5 - "WebSocket /ws/events?token={KEY}&site=north" [accepted]', "site=north"),
        (f'"GET /ws/events?site=a&token={JWT} HTTP/1.1" 101', "site=a&token=***"),
        ("GET /x?api_key=k1&password=hunter2&access_token=t&client_secret=s&X-Amz-Signature=f", "GET /x?"),
        (f"Authorization: Bearer {KEY}", "Bearer ***"),
        ("connect postgresql://facegate:pg-pass@db:5432/facegate failed", "facegate:***@db"),
        (f"a key {KEY} in prose", "fg_abcdefgh_***"),
        ("token%3Dsecretvalue", "token%3D***"),
    ],
)
def test_redact_masks_secrets_and_keeps_the_rest(line: str, kept: str) -> None:
    masked = redact(line)
    for secret in (KEY.split("_", 2)[2], JWT, "k1", "hunter2", "pg-pass", "secretvalue", "=t&", "=s&", "=f"):
        assert secret not in masked, masked
    assert kept in masked


def test_redact_leaves_lines_without_secrets_alone() -> None:
    line = "monkey=1 keyboard=2 site=north /api/v1/people?limit=5"
    assert redact(line) == line


def test_secret_filter_masks_args_and_extra_fields() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s"', None, None)
    record.args = ("1.2.3.4:5", f"/ws/events?token={KEY}")
    record.__dict__["error"] = "redis://user:pw@host:6379 refused"
    assert SecretFilter().filter(record)
    assert KEY not in record.getMessage() and "token=***" in record.getMessage()
    assert record.__dict__["error"] == "redis://user:***@host:6379 refused"


def test_install_redaction_covers_uvicorns_loggers_once() -> None:
    handler = logging.NullHandler()
    install_redaction([handler])
    install_redaction([handler])
    assert sum(isinstance(f, SecretFilter) for f in handler.filters) == 1
    assert any(isinstance(f, SecretFilter) for f in logging.getLogger("uvicorn.error").filters)
