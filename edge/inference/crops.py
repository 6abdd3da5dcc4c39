"""Event crops: the face region cut from the full frame, encoded as a size-capped JPEG."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from common.pipeline.image import Frame as Image

log = logging.getLogger(__name__)

# Which events carry a crop: every event, only events for unknown faces, or none.
CropPolicy = Literal["all", "unknown", "none"]

MIN_JPEG_QUALITY = 20
MIN_SIDE = 16  # below this a crop shows nothing useful; give up rather than shrink further


@dataclass(frozen=True, slots=True)
class CropSettings:
    """How events carry crops.

    `margin` is the fraction of the face box's larger side added on every side (0.4: the region is
    1.8 times the box), so the crop shows some head and shoulders. The region is resized so its longer
    side is at most `max_side`, then encoded at `jpeg_quality`, stepping down by 10 to 20 until it fits
    in `max_bytes`; if even quality 20 is too large, the side is halved and the steps repeat.
    """

    policy: CropPolicy = "all"
    margin: float = 0.4
    max_side: int = 160
    max_bytes: int = 30_000
    jpeg_quality: int = 85
    embedding: bool = True  # events carry the track's best embedding (facegate.event/1.1)


def wants_crop(policy: CropPolicy, person_id: str | None) -> bool:
    """Whether an event for `person_id` (None: unknown face) carries a crop under `policy`."""
    return policy == "all" or (policy == "unknown" and person_id is None)


def face_region(image: Image, box: NDArray[np.float32], margin: float) -> Image:
    """A copy of the face box [x, y, w, h] expanded by `margin` on every side, clipped to the image."""
    x, y, w, h = (float(v) for v in box[:4])
    pad = margin * max(w, h)
    height, width = image.shape[:2]
    x0, y0 = max(0, int(x - pad)), max(0, int(y - pad))
    x1, y1 = min(width, int(np.ceil(x + w + pad))), min(height, int(np.ceil(y + h + pad)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {[x, y, w, h]} lies outside the {width}x{height} image")
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def fit_side(region: Image, max_side: int) -> Image:
    """The region shrunk (area filter) so its longer side is at most `max_side`; never enlarged."""
    height, width = region.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return region
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(region, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def encode_jpeg(region: Image, max_side: int, max_bytes: int, jpeg_quality: int = 85) -> bytes | None:
    """The region as a JPEG of at most `max_bytes`, or None when it cannot be made that small."""
    qualities = [*range(jpeg_quality, MIN_JPEG_QUALITY, -10), MIN_JPEG_QUALITY]
    side = max_side
    while side >= MIN_SIDE:
        image = fit_side(region, side)
        for quality in qualities:
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and data.size <= max_bytes:
                return bytes(data.tobytes())
        side //= 2
    log.warning("crop_too_large", extra={"max_bytes": max_bytes, "max_side": max_side})
    return None
