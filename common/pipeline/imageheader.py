"""Read an image's width and height from its header, before any pixel is decoded.

This is how an oversized image is refused without allocating it. Supported: JPEG, PNG, BMP, WebP.
"""

from __future__ import annotations

import struct

from common.errors import ImageError

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_format(head: bytes) -> str:
    """Name of the format from its magic bytes, or raise ImageError."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    raise ImageError("not a supported image (JPEG, PNG, BMP or WebP)")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from the header of an encoded image."""
    fmt = image_format(data[:16])
    try:
        if fmt == "jpeg":
            return _jpeg_size(data)
        if fmt == "png":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        if fmt == "bmp":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(int(width)), abs(int(height))
        return _webp_size(data)
    except struct.error as err:
        raise ImageError(f"truncated {fmt.upper()} header") from err


def _jpeg_segments(data: bytes) -> tuple[tuple[int, int] | None, int]:
    """Walk the JPEG marker segments: ((width, height) of the frame or None, offset of the first scan)."""
    pos, size = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("corrupt JPEG: bad marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:
            return size, pos
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and size is None:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            size = (int(width), int(height))
        pos += 2 + length
    return size, -1


def _jpeg_size(data: bytes) -> tuple[int, int]:
    size, _ = _jpeg_segments(data)
    if size is None:
        raise ImageError("truncated JPEG: no frame header")
    return size


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise ImageError("corrupt WebP: unknown chunk")


def image_complete(data: bytes) -> bool:
    """False for a JPEG cut before its end-of-image marker or a PNG cut before its IEND chunk.

    Decoders fill a truncated JPEG with grey and return it; this catches that case. For JPEG the
    marker is searched after the first start-of-scan, so an EXIF thumbnail's own end marker
    does not count.
    """
    if data.startswith(b"\xff\xd8"):
        _, scan = _jpeg_segments(data)
        return scan != -1 and data.find(b"\xff\xd9", scan) != -1
    if data.startswith(b"\x89PNG"):
        return data.rfind(b"IEND") != -1
    return True
