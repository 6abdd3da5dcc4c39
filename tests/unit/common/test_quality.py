"""The quality score and gate on real faces made small, blurred or turned."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.pipeline.align import ARCFACE_TEMPLATE
from common.pipeline.face import Detection
from common.pipeline.pipeline import FacePipeline
from common.pipeline.quality import QualitySettings, assess, pose
from demo.sample_faces import SamplePhoto
from tests.support.faces import read


def shrunk(samples: dict[str, SamplePhoto], scale: float, blur_sigma: float = 0.0) -> np.ndarray:
    """The Obama photo shrunk by `scale` onto a plain 640x480 canvas, optionally blurred."""
    frame = read(samples["obama"].path)
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)[:480, :640]
    canvas = np.full((480, 640, 3), 90, dtype=np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    return cv2.GaussianBlur(canvas, (0, 0), blur_sigma) if blur_sigma else canvas


def test_quality_good_face_accepted_with_high_score(
    pipeline: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    (face,) = pipeline.process(read(samples["obama"].path))
    assert face.quality.accepted and face.quality.score > 0.8
    assert face.embedding is not None


def test_quality_tiny_face_refused_as_too_small(
    pipeline: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    (face,) = pipeline.process(shrunk(samples, 0.07))
    assert not face.quality.accepted
    assert any(r.startswith("face too small") for r in face.quality.reasons)
    assert face.embedding is None  # refused faces are not embedded


def test_quality_blurred_face_refused_as_blurred(
    pipeline: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    (sharp,) = pipeline.process(shrunk(samples, 0.3))
    (blurred,) = pipeline.process(shrunk(samples, 0.3, blur_sigma=6.0))
    assert sharp.quality.accepted
    assert blurred.quality.reasons == (f"too blurred: sharpness {blurred.quality.sharpness:.1f} < 15.0",)
    assert blurred.quality.score < sharp.quality.score


def test_quality_gate_off_embeds_refusable_faces(
    ungated: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    (face,) = ungated.process(shrunk(samples, 0.07, blur_sigma=2.0))
    assert face.quality.accepted and face.embedding is not None


def test_pose_frontal_template_is_zero() -> None:
    yaw, pitch, roll = pose(ARCFACE_TEMPLATE.astype(np.float32))
    assert abs(yaw) < 0.01 and abs(pitch) < 0.01 and abs(roll) < 0.5


def test_pose_rotated_landmarks_give_roll_not_yaw() -> None:
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    yaw, pitch, roll = pose((ARCFACE_TEMPLATE @ rot.T).astype(np.float32))
    assert roll == pytest.approx(30, abs=0.5)
    assert abs(yaw) < 0.01 and abs(pitch) < 0.01


def test_quality_turned_head_refused_for_yaw() -> None:
    landmarks = ARCFACE_TEMPLATE.astype(np.float32).copy()
    landmarks[2, 0] += 20  # nose far towards one eye: a head turned about 45 degrees
    detection = Detection(box=np.array([0, 0, 112, 112], np.float32), landmarks=landmarks, score=0.9)
    crop = (np.indices((112, 112)).sum(axis=0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    quality = assess(detection, crop, QualitySettings())
    assert quality.yaw > 0.45
    assert [r for r in quality.reasons if r.startswith("head turned")]
