"""Negative examples ("not P", gallery-change/1.1) on real embeddings of real photos: the matcher's veto,
and the gallery keeping negatives through deltas, snapshots, reopening and erasure.

Sample photos (registry packages): no pair of different people is a look-alike for SFace (at most
0.25), so the threshold is lowered to 0.2, where Biden's face is matched as Obama (enrolled from
obama2.jpg, cosine 0.25)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from common.messages import GalleryChange, Negative, Snapshot, SnapshotTemplate, Template, embedding_bytes
from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from edge.gallery.cache import Gallery
from edge.gallery.index import IndexSettings
from edge.gallery.matcher import Matcher
from tests.support.faces import read

MODEL = "sface-2021dec"
LOW_THRESHOLD, MARGIN = 0.2, 0.05


def embed(pipeline: FacePipeline, frame: NDArray[np.uint8]) -> NDArray[np.float32]:
    faces = [f for f in pipeline.process(frame, detect_size=640) if f.embedding is not None]
    assert faces
    vector = max(faces, key=lambda f: f.detection.area).embedding
    assert vector is not None
    return vector


@pytest.fixture(scope="module")
def faces(pipeline: FacePipeline, samples: dict[str, SamplePhoto]) -> dict[str, NDArray[np.float32]]:
    """Embeddings of the sample photos, and `biden_cam`: Biden as another camera saw him (smaller,
    blurred, JPEG at quality 40): the crop an operator marks "not Obama"."""
    out = {name: embed(pipeline, read(samples[name].path)) for name in ("obama2", "obama3", "biden")}
    out["grace"] = embed(pipeline, read(samples["grace_hopper"].path))
    small = cv2.resize(read(samples["biden"].path), None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (3, 3), 0)
    ok, jpeg = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 40])
    assert ok
    seen = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert seen is not None
    out["biden_cam"] = embed(pipeline, seen.astype(np.uint8))
    return out


@pytest.fixture
def gallery(tmp_path: Path, faces: dict[str, NDArray[np.float32]]) -> Iterator[Gallery]:
    """Obama (from obama2.jpg) and Grace Hopper enrolled."""
    with Gallery.open(tmp_path / "g.db", "g1", MODEL, IndexSettings()) as g:
        upserts = [
            Template(
                person_id="obama", template_id="o1", model=MODEL, embedding=embedding_bytes(faces["obama2"])
            ),
            Template(
                person_id="grace", template_id="g1", model=MODEL, embedding=embedding_bytes(faces["grace"])
            ),
        ]
        g.apply_delta(GalleryChange(gallery="g1", version=1, model=MODEL, upserts=upserts))
        yield g


def not_obama(gallery: Gallery, vector: NDArray[np.float32], version: int = 2) -> None:
    negative = Negative(person_id="obama", negative_id="n1", embedding=embedding_bytes(vector))
    gallery.apply_delta(GalleryChange(gallery="g1", version=version, model=MODEL, negatives=[negative]))


def test_matcher_negative_vetoes_lookalike_then_unknown(
    gallery: Gallery, faces: dict[str, NDArray[np.float32]]
) -> None:
    matcher = Matcher(gallery, LOW_THRESHOLD, MARGIN, negative_margin=0.05)
    before = matcher.match(faces["biden"])
    assert (before.person_id, before.reason) == ("obama", "matched")
    not_obama(gallery, faces["biden_cam"])
    after = matcher.match(faces["biden"])
    assert (after.person_id, after.reason) == (None, "vetoed")  # Grace, next, is far below the threshold


def test_matcher_negative_keeps_the_true_person_matched(
    gallery: Gallery, faces: dict[str, NDArray[np.float32]]
) -> None:
    not_obama(gallery, faces["biden_cam"])
    match = Matcher(gallery, LOW_THRESHOLD, MARGIN, negative_margin=0.05).match(faces["obama3"])
    assert (match.person_id, match.reason) == ("obama", "matched")


def test_matcher_vetoed_next_candidate_must_pass_threshold_and_margin(
    gallery: Gallery, faces: dict[str, NDArray[np.float32]]
) -> None:
    """Biden enrolled too, under another id: once Obama is vetoed Biden is the candidate, matched when
    he beats Grace by the margin, unknown when the margin asked is larger than his lead."""
    biden = Template(
        person_id="biden", template_id="b1", model=MODEL, embedding=embedding_bytes(faces["biden"])
    )
    gallery.apply_delta(GalleryChange(gallery="g1", version=2, model=MODEL, upserts=[biden]))
    # the negative is the query itself: Obama is vetoed for it
    not_obama(gallery, faces["obama3"], version=3)
    query = faces["obama3"]  # closest to Obama, then Biden (0.19), then Grace (0.12)
    matched = Matcher(gallery, 0.1, 0.05, negative_margin=0.05).match(query)
    assert (matched.person_id, matched.reason) == ("biden", "matched")
    ambiguous = Matcher(gallery, 0.1, 0.5, negative_margin=0.05).match(query)
    assert (ambiguous.person_id, ambiguous.reason) == (None, "vetoed")
    below = Matcher(gallery, 0.3, 0.05, negative_margin=0.05).match(query)
    assert (below.person_id, below.reason) == (None, "vetoed")


def test_gallery_negatives_survive_reopen_follow_snapshots_and_erasure(
    tmp_path: Path, gallery: Gallery, faces: dict[str, NDArray[np.float32]]
) -> None:
    not_obama(gallery, faces["biden_cam"])
    gallery.close()
    with Gallery.open(tmp_path / "g.db", "g1", MODEL, IndexSettings()) as reopened:
        negatives = reopened.negatives("obama")
        assert negatives is not None and negatives.shape == (1, 128)

        def neg(nid: str, face: str) -> Negative:
            return Negative(person_id="obama", negative_id=nid, embedding=embedding_bytes(faces[face]))

        kept = SnapshotTemplate(
            person_id="obama", template_id="o1", embedding=embedding_bytes(faces["obama2"])
        )
        snap = Snapshot(
            gallery="g1",
            version=5,
            model=MODEL,
            embedding_size=128,
            templates=[kept],
            negatives=[neg("n2", "grace"), neg("n3", "biden")],
        )
        reopened.replace_with_snapshot(snap)
        assert reopened.negative_count == 2
        reopened.apply_delta(GalleryChange(gallery="g1", version=6, model=MODEL, deleted_negatives=["n2"]))
        assert reopened.negative_count == 1
        reopened.erase_person("obama")
        assert reopened.negatives("obama") is None
