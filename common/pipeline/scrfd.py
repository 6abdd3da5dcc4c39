"""SCRFD output decoding (InsightFace format, for detectors users bring by file path).

Nine outputs in graph order: scores for strides 8, 16, 32, then box distances, then landmark
offsets (with or without a leading batch dimension). Two anchors per cell, each cell's anchors
consecutive. Scores are already sigmoid-activated. Box = centre -/+ distances * stride;
landmark k = centre + offset_k * stride.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from common.errors import ModelError
from common.pipeline.candidates import Candidates, stack

STRIDES = (8, 16, 32)
ANCHORS = 2


def decode_scrfd(
    outputs: list[NDArray[np.float32]], names: tuple[str, ...], pad_w: int, pad_h: int, threshold: float
) -> Candidates:
    """Candidate boxes [x, y, w, h], scores and 5x2 landmarks above `threshold`, in input pixels."""
    if len(outputs) != 9:
        raise ModelError(
            f"an SCRFD detector with landmarks has 9 outputs, this one has {len(outputs)} ({names})"
        )
    boxes, scores, points = [], [], []
    for level, stride in enumerate(STRIDES):
        score = outputs[level].reshape(-1)
        dist = outputs[level + 3].reshape(-1, 4) * stride
        kps = outputs[level + 6].reshape(-1, 5, 2) * stride
        cols, rows = pad_w // stride, pad_h // stride
        if score.size != cols * rows * ANCHORS:
            raise ModelError(
                f"SCRFD stride {stride}: {score.size} scores for a {cols}x{rows} grid with {ANCHORS} anchors"
            )
        idx = np.flatnonzero(score > threshold)
        if idx.size == 0:
            continue
        cell = idx // ANCHORS
        centre = np.stack([(cell % cols) * stride, (cell // cols) * stride], axis=1).astype(np.float32)
        d = dist[idx]
        x1, y1 = centre[:, 0] - d[:, 0], centre[:, 1] - d[:, 1]
        x2, y2 = centre[:, 0] + d[:, 2], centre[:, 1] + d[:, 3]
        boxes.append(np.stack([x1, y1, x2 - x1, y2 - y1], axis=1))
        scores.append(score[idx])
        points.append(kps[idx] + centre[:, None, :])
    return stack(boxes, scores, points)
