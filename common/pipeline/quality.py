"""Face quality: size, sharpness, pose and detection score, and the gate that refuses poor faces.

- size: the shorter side of the face box in frame pixels;
- sharpness: variance of the Laplacian of the aligned 112x112 grey crop;
- pose, from the five landmarks: roll is the angle of the eye line in degrees; yaw is the nose's
  horizontal offset from the eyes' midpoint over the eye distance (0 frontal, about +-0.5 in
  profile); pitch is the nose's vertical position between eye line and mouth line minus its
  frontal value (0.494 on the ArcFace template);
- detection: the detector's score.

The overall score in [0, 1] is the geometric mean of the four parts, each mapped to [0, 1].
"""

from __future__ import annotations

import math

import cv2
import msgspec
import numpy as np
from numpy.typing import NDArray

from common.pipeline.face import Detection, Quality

FRONTAL_PITCH = (71.7366 - 51.6) / (92.28 - 51.6)


class QualitySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The quality gate. A face failing any limit is refused with the reasons; see docs/pipeline.md."""

    enabled: bool = True
    min_face_px: float = 24.0
    min_sharpness: float = 15.0
    max_yaw: float = 0.45
    max_pitch: float = 0.3
    min_detection: float = 0.6
    min_score: float = 0.2
    full_size_px: float = 112.0  # a face this big or bigger gets the full size score
    full_sharpness: float = 150.0  # Laplacian variance that gets the full sharpness score


def sharpness(crop: NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the grey crop."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    _, std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))
    return float(std[0, 0]) ** 2


def pose(landmarks: NDArray[np.float32]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) estimated from the five landmarks, as described in the module doc."""
    pts = landmarks.astype(np.float64)
    right_eye, left_eye = pts[0], pts[1]
    dx, dy = left_eye - right_eye
    roll = math.degrees(math.atan2(dy, dx))
    cos, sin = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    rot = (pts - pts[2]) @ np.array([[cos, sin], [-sin, cos]])
    eye_mid, mouth_mid = (rot[0] + rot[1]) / 2, (rot[3] + rot[4]) / 2
    eye_dist = max(float(np.hypot(dx, dy)), 1e-6)
    yaw = float((rot[2][0] - eye_mid[0]) / eye_dist)
    span = float(mouth_mid[1] - eye_mid[1])
    pitch = float((rot[2][1] - eye_mid[1]) / span - FRONTAL_PITCH) if abs(span) > 1e-6 else 1.0
    return yaw, pitch, roll


def assess(detection: Detection, crop: NDArray[np.uint8], settings: QualitySettings) -> Quality:
    """Score one face and, when the gate is on, list why it is refused."""
    size_px = float(min(detection.box[2], detection.box[3]))
    sharp = sharpness(crop)
    yaw, pitch, roll = pose(detection.landmarks)
    parts = (
        min(1.0, size_px / settings.full_size_px),
        min(1.0, sharp / settings.full_sharpness),
        max(0.0, 1.0 - abs(yaw) / 0.6) * max(0.0, 1.0 - abs(pitch) / 0.5),
        min(1.0, max(0.0, detection.score)),
    )
    score = float(np.prod(parts) ** 0.25)
    reasons: list[str] = []
    if settings.enabled:
        if size_px < settings.min_face_px:
            reasons.append(f"face too small: {size_px:.0f} px < {settings.min_face_px:.0f} px")
        if sharp < settings.min_sharpness:
            reasons.append(f"too blurred: sharpness {sharp:.1f} < {settings.min_sharpness:.1f}")
        if abs(yaw) > settings.max_yaw:
            reasons.append(f"head turned too far: yaw {yaw:+.2f} beyond {settings.max_yaw:.2f}")
        if abs(pitch) > settings.max_pitch:
            reasons.append(f"head tilted too far: pitch {pitch:+.2f} beyond {settings.max_pitch:.2f}")
        if detection.score < settings.min_detection:
            reasons.append(f"weak detection: score {detection.score:.2f} < {settings.min_detection:.2f}")
        if score < settings.min_score:
            reasons.append(f"low overall quality: {score:.2f} < {settings.min_score:.2f}")
    return Quality(
        score=score,
        size_px=size_px,
        sharpness=sharp,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        detection=detection.score,
        reasons=tuple(reasons),
    )
