"""The clustering rule, shared by the worker (clusters found by pgvector) and bench/clusters.py (numpy).

Incremental centroid clustering: each unknown face, in arrival order, joins the cluster whose centroid
(the normalised sum of its members' unit embeddings) is most similar to it when that similarity reaches
`threshold`; otherwise it starts a cluster of its own. A centroid averages out one photo's pose and
light, so a cluster does not chain from one person to another through a series of look-alikes as
nearest-member (single-link) clustering does. Clusters are never split or merged automatically: an
operator merges them into a person (or enrolls them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

DEFAULT_THRESHOLD = 0.45
"""FACEGATE_CLUSTER_THRESHOLD's default: bench/clusters.py's choice for SFace (bench/README.md)."""
CANDIDATES = 8
"""Clusters the worker asks pgvector for (HNSW, nearest centroids first); the rule takes the best."""


def choose(query: NDArray[np.float32], centroids: NDArray[np.float32], threshold: float) -> int | None:
    """The row of `centroids` (sums; any length) `query` (unit length) joins, or None for a new cluster."""
    if len(centroids) == 0:
        return None
    norms = np.linalg.norm(centroids, axis=1)
    sims = (centroids @ query) / np.maximum(norms, 1e-12)
    best = int(np.argmax(sims))
    return best if float(sims[best]) >= threshold else None


@dataclass
class Clusterer:
    """The rule over centroids held in memory (bench/clusters.py; exact search over every cluster)."""

    threshold: float
    dim: int = 128
    sums: list[NDArray[np.float32]] = field(default_factory=list)

    def add(self, query: NDArray[np.float32]) -> int:
        """The cluster index `query` joins (a new one when none is close enough)."""
        unit = (query / max(float(np.linalg.norm(query)), 1e-12)).astype(np.float32)
        found = choose(unit, np.asarray(self.sums, np.float32).reshape(-1, self.dim), self.threshold)
        if found is None:
            self.sums.append(unit.copy())
            return len(self.sums) - 1
        self.sums[found] = self.sums[found] + unit
        return found
