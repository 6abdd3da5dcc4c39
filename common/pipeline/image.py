"""Load images for the pipeline: size limits checked before decoding, clear errors, BGR uint8 out."""

from __future__ import annotations

from pathlib import Path

import cv2
import msgspec
import numpy as np
from numpy.typing import NDArray

from common.errors import ImageError
from common.pipeline.imageheader import image_complete, image_size

Frame = NDArray[np.uint8]


class ImageLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Limits on input images. Over them an image is refused before its pixels are decoded."""

    max_bytes: int = 50 * 1024 * 1024  # 50 MiB encoded
    max_pixels: int = 40_000_000  # 40 megapixels (an 8K frame is 33 MP)
    min_side: int = 16  # smaller than this cannot hold a detectable face


def decode_image(data: bytes, limits: ImageLimits) -> Frame:
    """Decode an encoded image into a 3-channel BGR uint8 frame, enforcing the limits."""
    if not data:
        raise ImageError("empty file")
    if len(data) > limits.max_bytes:
        raise ImageError(f"file is {len(data)} bytes, over the limit of {limits.max_bytes}")
    width, height = image_size(data)
    check_dimensions(width, height, limits)
    if not image_complete(data):
        raise ImageError("truncated image: the file ends before the image data does")
    # IMREAD_COLOR: grayscale, RGBA and 16-bit images all become 8-bit BGR; EXIF rotation applied.
    frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ImageError("corrupt or truncated image: the decoder could not read it")
    return np.ascontiguousarray(frame)


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Refuse sizes outside the limits."""
    if width * height > limits.max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise ImageError(f"image is {width}x{height}; the smallest side accepted is {limits.min_side} px")


def load_image(path: Path, limits: ImageLimits) -> Frame:
    """Read and decode an image file; every failure is an ImageError naming the cause."""
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ImageError(f"file is {size} bytes, over the limit of {limits.max_bytes}")
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ImageError("no such file") from err
    except IsADirectoryError as err:
        raise ImageError("is a directory, not an image file") from err
    except PermissionError as err:
        raise ImageError("permission denied") from err
    return decode_image(data, limits)
