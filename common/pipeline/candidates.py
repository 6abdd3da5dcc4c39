"""Detector candidates before NMS, as every decoder returns them."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# boxes [x, y, w, h] (N x 4), scores (N), landmarks (N x 5 x 2), in detector-input pixels
Candidates = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]


def stack(
    boxes: list[NDArray[np.float32]], scores: list[NDArray[np.float32]], points: list[NDArray[np.float32]]
) -> Candidates:
    """Join the per-stride candidate arrays into one float32 set (an empty set when there are none)."""
    if not scores:
        empty = np.zeros((0,), dtype=np.float32)
        return empty.reshape(0, 4), empty, empty.reshape(0, 5, 2)
    return (
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(points).astype(np.float32),
    )
