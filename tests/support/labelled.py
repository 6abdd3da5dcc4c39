"""The labelled single-face photos of the dev set, and pairwise same/different decisions over them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from common.pipeline.pipeline import FacePipeline
from tests.support.faces import DEV_DIR, read

# person -> photos; one resolution of the multi-resolution Obama photo besides the original.
LABELLED: dict[str, tuple[str, ...]] = {
    "obama": ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama-240p.jpg", "knn_examples/test/obama1.jpg"),
    "biden": ("biden.jpg", "knn_examples/train/biden/biden2.jpg"),
    "alex_lacamoire": (
        "alex-lacamoire.png",
        "knn_examples/train/alex_lacamoire/img1.jpg",
        "knn_examples/test/alex_lacamoire1.jpg",
    ),
    "kit_harington": (
        "knn_examples/train/kit_harington/john1.jpeg",
        "knn_examples/train/kit_harington/john2.jpeg",
        "knn_examples/test/johnsnow_test1.jpg",
    ),
    "rose_leslie": ("knn_examples/train/rose_leslie/img1.jpg", "knn_examples/train/rose_leslie/img2.jpg"),
    "lin_manuel_miranda": ("lin-manuel-miranda.png",),
}


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    same: bool
    similarity: float


def largest_embedding(pipeline: FacePipeline, path: Path, detect_size: int) -> NDArray[np.float32]:
    faces = pipeline.process(read(path), detect_size=detect_size)
    assert faces, f"no face in {path}"
    face = max(faces, key=lambda f: f.detection.area)
    assert face.embedding is not None, f"{path}: {face.quality.reasons}"
    return face.embedding


def pairs(pipeline: FacePipeline, detect_size: int) -> list[Pair]:
    """Every pair of labelled photos with its cosine similarity."""
    photos = [(person, name) for person, names in LABELLED.items() for name in names]
    vectors = {name: largest_embedding(pipeline, DEV_DIR / name, detect_size) for _, name in photos}
    return [
        Pair(a, b, pa == pb, float(vectors[a] @ vectors[b]))
        for (pa, a), (pb, b) in itertools.combinations(photos, 2)
    ]
