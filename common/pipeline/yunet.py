"""YuNet output decoding (OpenCV Zoo's face_detection_yunet_2023mar).

Outputs per stride s in (8, 16, 32): cls_s, obj_s (N x 1), bbox_s (N x 4), kps_s (N x 10), one row
per feature-map cell in row-major order. Per cell (col, row):
score = sqrt(clip(cls) * clip(obj)); centre = ((col + dx) s, (row + dy) s); size = (e^dw s, e^dh s);
landmark k = ((kx + col) s, (ky + row) s).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from common.errors import ModelError
from common.pipeline.candidates import Candidates, stack

STRIDES = (8, 16, 32)


def decode_yunet(
    outputs: list[NDArray[np.float32]], names: tuple[str, ...], pad_w: int, pad_h: int, threshold: float
) -> Candidates:
    """Candidate boxes [x, y, w, h], scores and 5x2 landmarks above `threshold`, in input pixels."""
    by_name = dict(zip(names, outputs, strict=True))
    boxes, scores, points = [], [], []
    for stride in STRIDES:
        try:
            cls = by_name[f"cls_{stride}"].reshape(-1)
            obj = by_name[f"obj_{stride}"].reshape(-1)
            bbox = by_name[f"bbox_{stride}"].reshape(-1, 4)
            kps = by_name[f"kps_{stride}"].reshape(-1, 10)
        except KeyError as err:
            raise ModelError(f"YuNet output {err} is missing: is this a YuNet model?") from err
        cols = pad_w // stride
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        idx = np.flatnonzero(score > threshold)
        if idx.size == 0:
            continue
        col = (idx % cols).astype(np.float32)
        row = (idx // cols).astype(np.float32)
        b = bbox[idx]
        w = np.exp(b[:, 2]) * stride
        h = np.exp(b[:, 3]) * stride
        cx = (col + b[:, 0]) * stride
        cy = (row + b[:, 1]) * stride
        boxes.append(np.stack([cx - w / 2, cy - h / 2, w, h], axis=1))
        scores.append(score[idx])
        k = kps[idx].reshape(-1, 5, 2)
        points.append((k + np.stack([col, row], axis=1)[:, None, :]) * stride)
    return stack(boxes, scores, points)
