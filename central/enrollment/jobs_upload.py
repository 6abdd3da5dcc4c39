"""Reading an uploaded archive from the request body, never more than FACEGATE_MAX_ZIP_BYTES.

Two forms: the zip as the raw body (`Content-Type: application/zip`, also `application/x-zip-compressed`
or `application/octet-stream`), or `multipart/form-data` with the zip in the file field `archive`.
The body is streamed and counted, so an oversized upload is refused (413) without being buffered whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from multipart import MultipartError, MultipartSegment, PushMultipartParser  # type: ignore[import-untyped]

from central.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

ARCHIVE_FIELD = "archive"
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/octet-stream"})
MULTIPART = "multipart/form-data"
MULTIPART_OVERHEAD = 64 * 1024
"""Bytes allowed on top of the zip for multipart boundaries, headers and small form fields."""


async def read_archive(request: Request[Any, Any, Any], max_bytes: int) -> bytes:
    """The uploaded zip's bytes; PayloadTooLarge past `max_bytes`, UnsupportedMediaType for other
    content types, InvalidInput for a multipart body without exactly one `archive` file."""
    media_type, options = request.content_type
    if media_type in ZIP_TYPES:
        return await _capped(request, max_bytes, max_bytes)
    if media_type == MULTIPART:
        boundary = options.get("boundary")
        if not boundary:
            raise InvalidInput("multipart body without a boundary in its Content-Type")
        return await _multipart(request, boundary, max_bytes)
    raise UnsupportedMediaType(
        f"send the zip as the body with Content-Type application/zip, or as multipart/form-data in the "
        f"file field {ARCHIVE_FIELD!r} (got {media_type or 'no content type'!r})"
    )


async def _capped(request: Request[Any, Any, Any], max_bytes: int, max_body: int) -> bytes:
    body = bytearray()
    async for chunk in _chunks(request, max_bytes, max_body):
        body += chunk
    return bytes(body)


async def _chunks(request: Request[Any, Any, Any], max_bytes: int, max_body: int) -> AsyncIterator[bytes]:
    announced = request.content_length
    if announced is not None and announced > max_body:
        raise _too_large(max_bytes)
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > max_body:
            raise _too_large(max_bytes)
        yield chunk


async def _multipart(request: Request[Any, Any, Any], boundary: str, max_bytes: int) -> bytes:
    found: list[bytearray] = []
    current: bytearray | None = None
    try:
        with PushMultipartParser(boundary, max_segment_count=16) as parser:
            async for chunk in _chunks(request, max_bytes, max_bytes + MULTIPART_OVERHEAD):
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        is_archive = event.name == ARCHIVE_FIELD and event.filename is not None
                        current = bytearray() if is_archive else None
                        if current is not None:
                            found.append(current)
                    elif event is None:
                        current = None
                    elif current is not None:
                        current += event
                        if len(current) > max_bytes:
                            raise _too_large(max_bytes)
    except MultipartError as err:  # a malformed body, or one past the parser's limits (16 parts)
        raise InvalidInput(f"the multipart body cannot be parsed ({err})", code="bad_multipart") from err
    if len(found) != 1:
        raise InvalidInput(
            f"send exactly one zip file in the multipart file field {ARCHIVE_FIELD!r} (found {len(found)})"
        )
    return bytes(found[0])


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the archive is over the limit of {max_bytes} bytes (FACEGATE_MAX_ZIP_BYTES): split it into "
        "several jobs"
    )
