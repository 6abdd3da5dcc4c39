"""Motion gating: a cheap change detector per camera, so the face detector runs only where something moved.

Each frame is shrunk to a small greyscale copy (`MotionSettings.width` pixels wide), blurred against sensor
noise and compression artefacts, and compared with a running-average background (`cv2.accumulateWeighted`).
Changed pixels form connected regions; regions smaller than `min_area` are noise and ignored. The union of
the rest, grown by `padding` and to at least `min_region` of the frame's shorter side, is where the detector
looks. When the union covers more than `widespread` of the frame, it looks at the whole frame.

Lighting changes (a light switched on, the sun through a window) change every pixel a little rather than a
few pixels a lot. Two defences: each frame is compared with the background as the scene's overall brightness
change predicts it (brightness = gain x background + offset, fitted robustly; pixels clipped where the
prediction clips too are no news), and the background follows that change at once; and when more than
`lighting` of the frame still changed, the frame is treated as a new scene: the background is re-learnt from
it at once and the detector is not run for it. So a lighting change costs at most one detector run, never
one on every frame while a slow average catches up.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.config.schema import MotionSettings

SATURATED = 245.0  # grey level from which a pixel is taken as clipped
Box = tuple[int, int, int, int]  # x, y, w, h in the frame's pixels
FloatBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Motion:
    """What one frame showed: `box` is where to detect (None: nothing moved), `share` the changed share of
    the frame, `lighting` whether the frame was taken as a lighting or scene change."""

    box: Box | None
    share: float
    lighting: bool = False

    @property
    def moved(self) -> bool:
        return self.box is not None


def line_fit(x: NDArray[np.float32], y: NDArray[np.float32]) -> tuple[float, float]:
    """Least squares `y = gain * x + offset` (gain 1, offset 0 when x hardly varies)."""
    mx, my = float(x.mean()), float(y.mean())
    dx = x - mx
    spread = float(dx @ dx)
    if spread < 16.0 * x.size:  # x within a few grey levels: no slope to fit
        return 1.0, 0.0
    gain = float(dx @ (y - my)) / spread
    return gain, my - gain * mx


class MotionDetector:
    """The motion state of one camera; `update` once per frame, in frame order."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._background: NDArray[np.float32] | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    def update(self, image: NDArray[np.uint8]) -> Motion:
        """Compare `image` (BGR or grey) with the background, then learn it into the background."""
        height, width = image.shape[:2]
        small = self._small(image)
        if self._background is None or self._background.shape != small.shape:
            self._background = small.copy()
            return Motion((0, 0, width, height), 1.0)  # no background yet: look everywhere once
        gain, offset = self._brightness_change(small, self._background)
        expected = self._background * gain + offset
        changed = (np.abs(small - expected) > self.settings.threshold) & ~(
            (small >= SATURATED) & (expected >= SATURATED)  # saturated as the lighting predicts: no news
        )
        mask: NDArray[np.uint8] = np.asarray(
            cv2.dilate(changed.astype(np.uint8), self._kernel, iterations=2), dtype=np.uint8
        )
        share = float(mask.mean())
        if share > self.settings.lighting:
            self._background = small.copy()
            return Motion(None, share, lighting=True)
        if gain != 1.0 or offset != 0.0:  # follow the new lighting at once, keep learning the rest slowly
            self._background = np.clip(expected, 0.0, 255.0).astype(np.float32)
        cv2.accumulateWeighted(small, self._background, self.settings.alpha)
        region = self._region(mask)
        if region is None:
            return Motion(None, share)
        return Motion(self._to_frame(region, mask.shape, (height, width)), share)

    def _small(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        height, width = grey.shape[:2]
        target = min(self.settings.width, width)
        size = (target, max(1, round(height * target / width)))
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        blurred: NDArray[np.float32] = cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)
        return blurred

    def _brightness_change(
        self, small: NDArray[np.float32], background: NDArray[np.float32]
    ) -> tuple[float, float]:
        """The scene's overall brightness change as a line `small = gain * background + offset`, fitted over
        all pixels, then again over those it already explains (so a person covering part of the frame hardly
        moves it, while a light switched on moves every pixel along it). Saturated pixels are left out."""
        x, y = background.ravel(), small.ravel()
        keep = (x < SATURATED) & (y < SATURATED)
        gain, offset = 1.0, 0.0
        for _ in range(2):
            if keep.sum() < 0.2 * x.size:
                return 1.0, 0.0
            gain, offset = line_fit(x[keep], y[keep])
            keep &= np.abs(y - (gain * x + offset)) < self.settings.threshold
        return (gain, offset) if gain >= 0.2 else (1.0, 0.0)

    def _region(self, mask: NDArray[np.uint8]) -> Box | None:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        least = self.settings.min_area * mask.size
        boxes = [stats[i] for i in range(1, count) if stats[i][cv2.CC_STAT_AREA] >= least]
        if not boxes:
            return None
        x0 = min(int(b[cv2.CC_STAT_LEFT]) for b in boxes)
        y0 = min(int(b[cv2.CC_STAT_TOP]) for b in boxes)
        x1 = max(int(b[cv2.CC_STAT_LEFT] + b[cv2.CC_STAT_WIDTH]) for b in boxes)
        y1 = max(int(b[cv2.CC_STAT_TOP] + b[cv2.CC_STAT_HEIGHT]) for b in boxes)
        return x0, y0, x1 - x0, y1 - y0

    def _to_frame(self, region: Box, small: tuple[int, ...], frame: tuple[int, int]) -> Box:
        """The region in frame pixels, grown by `padding` and to `min_region`, clipped; the whole frame when
        it covers more than `widespread` of it."""
        (sh, sw), (height, width) = small[:2], frame
        sx, sy = width / sw, height / sh
        return grow((region[0] * sx, region[1] * sy, region[2] * sx, region[3] * sy), frame, self.settings)


def grow(
    box: FloatBox, frame: tuple[int, int], settings: MotionSettings, padding: float | None = None
) -> Box:
    """`box` (frame pixels) grown by `padding` (default: the settings') of its size on every side and to at
    least `min_region` of the frame's shorter side, clipped to the frame; the whole frame when the result
    covers more than `widespread` of it."""
    height, width = frame
    x, y, w, h = box
    pad = settings.padding if padding is None else padding
    least = settings.min_region * min(width, height)
    grown_w, grown_h = max(w * (1 + 2 * pad), least), max(h * (1 + 2 * pad), least)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = max(0, round(cx - grown_w / 2)), max(0, round(cy - grown_h / 2))
    x1, y1 = min(width, round(cx + grown_w / 2)), min(height, round(cy + grown_h / 2))
    if (x1 - x0) * (y1 - y0) > settings.widespread * width * height:
        return 0, 0, width, height
    return x0, y0, x1 - x0, y1 - y0


def union(boxes: list[FloatBox]) -> FloatBox:
    """The smallest box holding every one of `boxes` (at least one)."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0
