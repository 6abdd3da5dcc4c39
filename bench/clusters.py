"""Clustering of unknown faces (central/clusters/assign.py) against labels: purity and completeness by
threshold.

Input: every labelled identity we have, the pinned registry photos (Obama, Biden, Eileen Collins, Grace
Hopper) and the dev set ../shared/data/faces-dev (Obama, Biden, Alex Lacamoire, Kit Harington, Rose
Leslie, Lin-Manuel Miranda): 8 identities. Each identity is seen `--sightings` times at one of
`--sites` sites, each sighting one of its photos varied as cameras vary them: scale (0.35-1.0 of the
photo, so faces of 30-300 px), Gaussian blur (sigma 0-1.6), JPEG quality 30-90, brightness 0.6-1.4 and
rotation -12..12 degrees. Every sighting goes through the face pipeline (detect, quality gate, embed);
those the gate refuses are not events (counted). The embeddings arrive shuffled, as ingest would see
them, and are clustered at each threshold.

- purity: over every clustered face, the share of its cluster that has its label (1.0: no cluster mixes
  people);
- completeness: over every face, the share of its identity's faces in that identity's largest cluster
  (1.0: each person is one cluster).

Without ../shared the dev identities are missing and the run says so (4 identities remain).

    .venv/bin/python -m bench.clusters [--sightings 40] [--sites 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from central.clusters.assign import Clusterer
from common.models.fetch import models_dir
from common.pipeline.image import ImageLimits, load_image
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from demo.sample_faces import fetch_samples

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces-dev"
DEV_PHOTOS: dict[str, tuple[str, ...]] = {
    "obama": ("obama3.jpg", "obama-240p.jpg", "knn_examples/test/obama1.jpg"),
    "biden": ("knn_examples/train/biden/biden2.jpg",),
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
REGISTRY: dict[str, str] = {
    "obama": "obama",
    "obama2": "obama",
    "obama_partial_face": "obama",
    "biden": "biden",
    "astronaut": "eileen_collins",
    "grace_hopper": "grace_hopper",
}
THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def photos() -> tuple[dict[str, list[NDArray[np.uint8]]], bool]:
    """identity -> its photos (BGR); whether the dev set was there."""
    found: dict[str, list[NDArray[np.uint8]]] = {}
    samples = fetch_samples()
    for name, person in REGISTRY.items():
        found.setdefault(person, []).append(load_image(samples[name].path, ImageLimits()))
    dev = DEV.is_dir()
    if dev:
        for person, names in DEV_PHOTOS.items():
            found.setdefault(person, []).extend(load_image(DEV / name, ImageLimits()) for name in names)
    return found, dev


def vary(image: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """One camera's view of a photo: rotated, scaled, blurred, lit and JPEG-compressed."""
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), float(rng.uniform(-12, 12)), 1.0)
    out = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
    scale = float(rng.uniform(0.35, 1.0))
    out = cv2.resize(
        out, (max(32, int(width * scale)), max(32, int(height * scale))), interpolation=cv2.INTER_AREA
    )
    sigma = float(rng.uniform(0.0, 1.6))
    if sigma > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out = np.clip(out.astype(np.float32) * float(rng.uniform(0.6, 1.4)), 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
    assert ok
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded.astype(np.uint8)


def sightings(
    pipeline: FacePipeline, people: dict[str, list[NDArray[np.uint8]]], count: int, rng: np.random.Generator
) -> tuple[list[str], NDArray[np.float32], int]:
    """(labels, embeddings) of every sighting the gate accepted, and how many it refused."""
    labels: list[str] = []
    vectors: list[NDArray[np.float32]] = []
    refused = 0
    for person, images in people.items():
        for _ in range(count):
            seen = vary(images[int(rng.integers(len(images)))], rng)
            faces = [f for f in pipeline.process(seen) if f.embedding is not None]
            if not faces:
                refused += 1
                continue
            face = max(faces, key=lambda f: f.detection.area)
            assert face.embedding is not None
            labels.append(person)
            vectors.append(face.embedding)
    return labels, np.stack(vectors), refused


def score(labels: list[str], clusters: list[int]) -> tuple[float, float]:
    """(purity, completeness) of `clusters` against `labels` (see the module doc)."""
    members: dict[int, Counter[str]] = {}
    for label, cluster in zip(labels, clusters, strict=True):
        members.setdefault(cluster, Counter())[label] += 1
    purity = sum(c.most_common(1)[0][1] for c in members.values()) / len(labels)
    per_person: dict[str, Counter[int]] = {}
    for label, cluster in zip(labels, clusters, strict=True):
        per_person.setdefault(label, Counter())[cluster] += 1
    completeness = sum(c.most_common(1)[0][1] for c in per_person.values()) / len(labels)
    return purity, completeness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sightings", type=int, default=40, help="sightings per identity")
    parser.add_argument("--sites", type=int, default=3, help="sites the sightings are spread over")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(args.seed)
    people, dev = photos()
    if not dev:
        print(f"note: {DEV} is absent: only the registry identities ({len(people)}) are measured")
    pipeline = FacePipeline.load(PipelineSettings(models_dir=str(models_dir())))
    labels, vectors, refused = sightings(pipeline, people, args.sightings, rng)
    order = rng.permutation(len(labels))
    labels = [labels[i] for i in order]
    vectors = vectors[order]
    sites = rng.integers(args.sites, size=len(labels))
    print(
        f"{len(people)} identities, {len(labels)} sightings over {args.sites} sites "
        f"({refused} refused by the quality gate), {len(set(sites.tolist()))} sites seen"
    )
    print("| threshold | clusters | purity | completeness |\n|---|---|---|---|")
    for threshold in THRESHOLDS:
        clusterer = Clusterer(threshold, dim=vectors.shape[1])
        clusters = [clusterer.add(v) for v in vectors]
        purity, completeness = score(labels, clusters)
        print(f"| {threshold:.2f} | {len(clusterer.sums)} | {purity:.3f} | {completeness:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
