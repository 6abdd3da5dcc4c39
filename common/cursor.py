"""Opaque keyset cursors: url-safe base64 (unpadded) of a JSON array of the last row's sort key.

A client passes `next` from one page as `cursor` for the following one and never looks inside. Every
list that pages by keyset (events, edges, people, enrollment jobs) uses this one codec; what each
position holds (a time and an id, a site and an edge) is the caller's business.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from common.encoding import b64url, b64url_decode
from common.errors import FacegateError

MAX_CURSOR_CHARS = 512


class CursorError(FacegateError, ValueError):
    """The text is not a cursor this codec made (or not one of the expected shape)."""


def encode_cursor(*values: str) -> str:
    return b64url(msgspec.json.encode(list(values)))


def decode_cursor(text: str, size: int) -> tuple[str, ...]:
    """The `size` strings of a cursor made by `encode_cursor`; CursorError for anything else."""
    try:
        if len(text) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        values = msgspec.json.decode(b64url_decode(text), type=list[str])
    except (ValueError, msgspec.DecodeError) as err:  # EncodingError is a ValueError
        raise CursorError("not a cursor") from err
    if len(values) != size:
        raise CursorError(f"a cursor of {len(values)} values, expected {size}")
    return tuple(values)


def encode_time_id_cursor(ts: datetime, row_id: UUID) -> str:
    """The cursor after a row sorted by (a timezone-aware time, a UUID)."""
    return encode_cursor(ts.isoformat(), str(row_id))


def decode_time_id_cursor(text: str) -> tuple[datetime, UUID]:
    """(time, id) of a cursor made by `encode_time_id_cursor`; CursorError for anything else."""
    ts_text, id_text = decode_cursor(text, 2)
    try:
        ts = datetime.fromisoformat(ts_text)
        row_id = UUID(id_text)
    except ValueError as err:
        raise CursorError("not a (time, id) cursor") from err
    if ts.tzinfo is None:
        raise CursorError("a cursor time without a timezone")
    return ts, row_id
