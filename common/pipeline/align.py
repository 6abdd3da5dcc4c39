"""Five-point alignment onto the 112x112 ArcFace template, from full-resolution frame pixels."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from common.pipeline.image import Frame

CROP_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_transform(
    src: NDArray[np.float32], dst: NDArray[np.float64] = ARCFACE_TEMPLATE
) -> NDArray[np.float64]:
    """2x3 matrix of the least-squares similarity (rotation, uniform scale, shift; no reflection)
    taking the points `src` onto `dst`.

    In the complex plane this is w = a z + t; with centred points the optimum is
    a = sum(conj(z) w) / sum(|z|^2), the same solution as Umeyama's SVD method for 2-D points.
    """
    z = src[:, 0].astype(np.float64) + 1j * src[:, 1].astype(np.float64)
    w = dst[:, 0] + 1j * dst[:, 1]
    z_mean, w_mean = z.mean(), w.mean()
    zc = z - z_mean
    denom = float(np.vdot(zc, zc).real)
    a = np.vdot(zc, w - w_mean) / denom if denom > 0 else 1.0 + 0j
    t = w_mean - a * z_mean
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]], dtype=np.float64)


def align_face(frame: Frame, landmarks: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The 112x112 BGR crop of the face whose five landmarks are given in frame pixels."""
    matrix = similarity_transform(landmarks)
    crop = cv2.warpAffine(frame, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR)
    return cast(NDArray[np.uint8], crop)
