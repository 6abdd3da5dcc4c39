"""In-process values the pipeline produces: detections, quality reports, embedded faces."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Embedding = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Detection:
    """One face in frame pixels: box [x, y, w, h], five landmarks (right eye, left eye, nose,
    right and left mouth corner, the subject's right first) and the detector's score."""

    box: NDArray[np.float32]
    landmarks: NDArray[np.float32]
    score: float

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


@dataclass(frozen=True, slots=True)
class Quality:
    """A face's quality: the overall score in [0, 1], its parts, and why the gate refused it."""

    score: float
    size_px: float
    sharpness: float
    yaw: float
    pitch: float
    roll: float
    detection: float
    reasons: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.reasons


@dataclass(frozen=True, slots=True)
class Face:
    """A detected face with its quality and, when it passed the gate and was embedded, its embedding."""

    detection: Detection
    quality: Quality
    embedding: Embedding | None = None
    model_id: str = ""
    crop: NDArray[np.uint8] | None = field(default=None, repr=False)
