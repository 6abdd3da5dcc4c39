"""Opaque keyset cursors for list routes: url-safe base64 of a JSON array of the last row's sort key.

A client passes `next` from one page as `cursor` for the following one and never looks inside. The
event cursor is `[ts (RFC 3339, microseconds), id]` of the last event of a page; the edge cursor is
`[site, edge]`. A cursor that does not decode is refused with 422 `bad_cursor`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from uuid import UUID

import msgspec

from central.errors import InvalidInput

MAX_CURSOR_CHARS = 512


def encode_cursor(*values: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(values))).decode("ascii").rstrip("=")


def decode_cursor(text: str, size: int) -> tuple[str, ...]:
    """The `size` strings of a cursor made by `encode_cursor`; InvalidInput for anything else."""
    try:
        if len(text) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = msgspec.json.decode(raw, type=list[str])
    except (ValueError, binascii.Error, msgspec.DecodeError) as err:
        raise _bad_cursor() from err
    if len(values) != size:
        raise _bad_cursor()
    return tuple(values)


def encode_event_cursor(ts: datetime, event_id: UUID) -> str:
    return encode_cursor(ts.isoformat(), str(event_id))


def decode_event_cursor(text: str) -> tuple[datetime, UUID]:
    """(ts, id) of the last event of the previous page."""
    ts_text, id_text = decode_cursor(text, 2)
    try:
        ts = datetime.fromisoformat(ts_text)
        event_id = UUID(id_text)
    except ValueError as err:
        raise _bad_cursor() from err
    if ts.tzinfo is None:
        raise _bad_cursor()
    return ts, event_id


def _bad_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not one this API made: pass the `next` value of the previous page unchanged, "
        "or leave cursor out to start from the newest",
        code="bad_cursor",
    )
