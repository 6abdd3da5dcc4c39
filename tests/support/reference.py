"""OpenCV's own YuNet + SFace pipeline, the reference our pipeline must match (MODELS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from common.embedding import l2_normalize
from common.models.manifest import SFACE, YUNET
from common.pipeline.image import Frame


@dataclass(frozen=True, slots=True)
class RefFace:
    box: NDArray[np.float32]
    embedding: NDArray[np.float32]


def reference_faces(model_dir: Path, frame: Frame) -> list[RefFace]:
    """Faces found by cv2.FaceDetectorYN on the full frame, embedded by cv2.FaceRecognizerSF."""
    height, width = frame.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(model_dir / YUNET.file), "", (width, height), 0.6, 0.3, 5000)
    recognizer = cv2.FaceRecognizerSF.create(str(model_dir / SFACE.file), "")
    _, faces = detector.detect(frame)
    if faces is None:
        return []
    out = []
    for face in faces:
        feature = recognizer.feature(recognizer.alignCrop(frame, face)).reshape(1, -1)
        out.append(
            RefFace(box=face[:4].astype(np.float32), embedding=l2_normalize(feature.astype(np.float32))[0])
        )
    return out


def iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
    union = float(a[2] * a[3] + b[2] * b[3]) - inter
    return inter / union if union > 0 else 0.0
