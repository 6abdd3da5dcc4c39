"""The events and edges lists' cursors (shared by two domains, so here): the common keyset codec
(common/cursor.py), refused with 422 `bad_cursor` when they do not decode.

The event cursor is `[ts (RFC 3339, microseconds), id]` of the last event of a page; the edge cursor is
`[site, edge]`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from central.errors import InvalidInput
from common.cursor import CursorError, decode_time_id_cursor, encode_cursor, encode_time_id_cursor
from common.cursor import decode_cursor as _decode

__all__ = ["decode_cursor", "decode_event_cursor", "encode_cursor", "encode_event_cursor"]


def decode_cursor(text: str, size: int) -> tuple[str, ...]:
    """The `size` strings of a cursor made by `encode_cursor`; InvalidInput for anything else."""
    try:
        return _decode(text, size)
    except CursorError as err:
        raise bad_cursor() from err


def encode_event_cursor(ts: datetime, event_id: UUID) -> str:
    return encode_time_id_cursor(ts, event_id)


def decode_event_cursor(text: str) -> tuple[datetime, UUID]:
    """(ts, id) of the last event of the previous page."""
    try:
        return decode_time_id_cursor(text)
    except CursorError as err:
        raise bad_cursor() from err


def bad_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not one this API made: pass the `next` value of the previous page unchanged, "
        "or leave cursor out to start from the newest",
        code="bad_cursor",
    )
