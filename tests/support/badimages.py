"""Bad and unusual image files, written into a folder for tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height, followed by a few bytes of deflate data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(b"\x00" * 1000)
    data += struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    path.write_bytes(data)
    return path


def write_bad_images(folder: Path, face_jpeg: Path) -> dict[str, Path]:
    """Every kind of bad input the command line must survive, plus two unusual but valid ones."""
    folder.mkdir(parents=True, exist_ok=True)
    good = face_jpeg.read_bytes()
    frame = cv2.imread(str(face_jpeg))
    assert frame is not None, face_jpeg
    files = {
        "missing": folder / "does-not-exist.jpg",
        "empty": folder / "empty.jpg",
        "truncated": folder / "truncated.jpg",
        "text": folder / "notes.jpg",
        "tiny": folder / "one-pixel.png",
        "huge": png_header_only(folder / "huge.png", 60_000, 60_000),
        "grey": folder / "grey.png",
        "rgba": folder / "rgba.png",
        "noface": folder / "noface.png",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["text"].write_text("this is not an image\n")
    cv2.imwrite(str(files["tiny"]), np.zeros((1, 1, 3), dtype=np.uint8))
    cv2.imwrite(str(files["grey"]), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(files["rgba"]), cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA))
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))
    cv2.imwrite(str(files["noface"]), cv2.merge([ramp, ramp.T[:480, :480].repeat(2, axis=1)[:, :640], ramp]))
    return files
