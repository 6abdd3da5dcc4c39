"""What of a payload may reach a log line."""

from __future__ import annotations

PAYLOAD_LOG_BYTES = 64


def truncate(payload: bytes, limit: int = PAYLOAD_LOG_BYTES) -> str:
    """A payload for a log line: its first `limit` bytes and its size, never the whole thing."""
    head = payload[:limit].decode("utf-8", "replace")
    return head if len(payload) <= limit else f"{head}... ({len(payload)} bytes)"
