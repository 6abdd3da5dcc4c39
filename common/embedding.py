"""Embedding math: normalisation and cosine similarity."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

EPS = 1e-12


def l2_normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    out: NDArray[np.float32] = (v / np.maximum(norms, EPS)).astype(np.float32)
    return out


def cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Cosine similarity of two vectors (normalised here, so any length works)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < EPS or nb < EPS:
        return 0.0
    return float(np.dot(a, b) / (na * nb))
