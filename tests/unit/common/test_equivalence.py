"""Our pipeline against OpenCV's reference at the same detection input (the full frame)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from tests.support.faces import DEV_DIR, DEV_REASON, dev_path, read
from tests.support.reference import iou, reference_faces

DEV_PHOTOS = sorted(p for p in DEV_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def _check_equivalent(ungated: FacePipeline, model_dir: Path, path: Path) -> int:
    frame = read(path)
    ours = ungated.process(frame, detect_size=0)
    ref = reference_faces(model_dir, frame)
    assert len(ours) == len(ref), f"{path.name}: {len(ours)} faces, OpenCV found {len(ref)}"
    for face in ours:
        best = max(ref, key=lambda r: iou(face.detection.box, r.box))
        assert iou(face.detection.box, best.box) >= 0.95, path.name
        assert face.embedding is not None
        assert float(face.embedding @ best.embedding) >= 0.999, path.name
    return len(ours)


@pytest.mark.parametrize("name", ["obama", "obama2", "obama3", "biden", "astronaut", "grace_hopper"])
def test_pipeline_full_frame_sample_photo_matches_opencv(
    ungated: FacePipeline, model_dir: Path, samples: dict[str, SamplePhoto], name: str
) -> None:
    assert _check_equivalent(ungated, model_dir, samples[name].path) >= 1


@pytest.mark.devdata
@pytest.mark.skipif(not DEV_PHOTOS, reason=DEV_REASON)
def test_pipeline_full_frame_dev_photos_match_opencv(ungated: FacePipeline, model_dir: Path) -> None:
    faces = sum(_check_equivalent(ungated, model_dir, path) for path in DEV_PHOTOS)
    assert faces >= len(DEV_PHOTOS)


def test_pipeline_embeddings_are_unit_float32_tagged(
    pipeline: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    faces = pipeline.process(read(samples["obama"].path))
    assert len(faces) == 1
    vector = faces[0].embedding
    assert vector is not None and vector.dtype.name == "float32" and vector.shape == (128,)
    assert abs(float(vector @ vector) - 1.0) < 1e-5
    assert faces[0].model_id == "sface-2021dec"


def test_pipeline_batch_of_faces_equals_one_by_one(ungated: FacePipeline, model_dir: Path) -> None:
    frame = read(dev_path("two_people.jpg"))
    faces = ungated.process(frame)
    assert len(faces) == 2
    assert ungated.embedder is not None
    for face in faces:
        assert face.crop is not None and face.embedding is not None
        alone = ungated.embedder.embed([face.crop])[0]
        assert float(alone @ face.embedding) > 0.9999
