"""Motion gating on real photos with sensor noise and JPEG compression: a still scene is gated out, a
moving face is found where it is, a lighting change does not keep the detector running, and a face found on
the region that moved lands on the same full-frame pixels as one found on the whole frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from common.pipeline.pipeline import FacePipeline, Timings
from demo.sample_faces import SamplePhoto
from edge.camera.motion import MotionDetector
from edge.camera.sources import Frame
from edge.config.schema import BatchSettings, Camera, MotionSettings, motion_settings
from edge.delivery.outbox import Outbox
from edge.delivery.sequence import Sequences
from edge.inference.batch import DetectRequest, detect_and_embed, region_size, shifted
from edge.inference.frames import FrameProcessor, Planned, process_frames
from edge.inference.tracker import Tracker
from edge.ops.metrics import EdgeMetrics
from tests.support.faces import read

WIDTH, HEIGHT = 1280, 720
# Detecting on another input moves a 90-pixel face's landmarks by a pixel or two, and its embedding as
# much as another detect size does (on this frame, the whole frame at 640 against full size: 0.79).
# So: the same person, well above SFace's 0.363 threshold.
COSINE_FLOOR = 0.6


@pytest.fixture(scope="module")
def scene(samples: dict[str, SamplePhoto]) -> np.ndarray:
    """A still 720p scene: a real photo, blurred so it holds no face of its own."""
    photo = cv2.resize(read(samples["biden"].path), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(photo, (0, 0), 25), dtype=np.uint8)


@pytest.fixture(scope="module")
def face(samples: dict[str, SamplePhoto]) -> np.ndarray:
    photo = read(samples["obama2"].path)
    return np.asarray(cv2.resize(photo, (240, 240), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def camera_frame(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`image` as a camera gives it: sensor noise, then JPEG compression."""
    noisy = np.clip(image.astype(np.float32) + rng.normal(0.0, 4.0, image.shape), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), dtype=np.uint8)


def pasted(scene: np.ndarray, face: np.ndarray, x: int, y: int) -> np.ndarray:
    image = scene.copy()
    image[y : y + face.shape[0], x : x + face.shape[1]] = face
    return image


def test_motion_still_scene_with_noise_is_gated_out(scene: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    detector = MotionDetector(MotionSettings())
    first = detector.update(camera_frame(scene, rng))
    assert first.box == (0, 0, WIDTH, HEIGHT)  # no background yet: the first frame is looked at whole
    assert [detector.update(camera_frame(scene, rng)).box for _ in range(40)] == [None] * 40


def test_motion_moving_face_is_found_where_it_is(scene: np.ndarray, face: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    detector = MotionDetector(MotionSettings())
    detector.update(camera_frame(scene, rng))
    for step in range(12):
        x, y = 100 + 60 * step, 300
        motion = detector.update(camera_frame(pasted(scene, face, x, y), rng))
        assert motion.box is not None, f"no motion at step {step}"
        bx, by, bw, bh = motion.box
        assert bx <= x and by <= y and bx + bw >= x + face.shape[1] and by + bh >= y + face.shape[0]
        assert bw * bh < WIDTH * HEIGHT / 2  # a region, not the whole frame


def test_motion_lights_switched_on_do_not_keep_the_detector_running(scene: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    detector = MotionDetector(MotionSettings())
    for _ in range(5):
        detector.update(camera_frame(scene, rng))
    brighter = np.clip(scene.astype(np.float32) * 1.6 + 10, 0, 255).astype(np.uint8)
    moved = [detector.update(camera_frame(brighter, rng)).moved for _ in range(30)]
    assert sum(moved) <= 1 and not any(moved[1:]), moved  # at most the frame the lights came on


def test_motion_sun_on_half_the_frame_is_learnt_within_a_second_or_two(scene: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    detector = MotionDetector(MotionSettings())
    for _ in range(5):
        detector.update(camera_frame(scene, rng))
    sunny = scene.astype(np.float32)
    sunny[:, : WIDTH // 2] = np.clip(sunny[:, : WIDTH // 2] * 1.5 + 20, 0, 255)
    moved = [detector.update(camera_frame(sunny.astype(np.uint8), rng)).moved for _ in range(40)]
    assert not any(moved[-10:]), moved  # absorbed into the background; 5 fps: within 6 s at most
    assert sum(moved) <= 30


def test_motion_face_found_on_the_moved_region_maps_to_full_frame_pixels(
    scene: np.ndarray, face: np.ndarray, pipeline: FacePipeline
) -> None:
    rng = np.random.default_rng(5)
    detector = MotionDetector(MotionSettings())
    detector.update(camera_frame(scene, rng))
    image = camera_frame(pasted(scene, face, 900, 380), rng)
    box = detector.update(image).box
    assert box is not None and box != (0, 0, WIDTH, HEIGHT)
    x, y, w, h = box
    on_region = [shifted(d, x, y) for d in pipeline.detect(np.ascontiguousarray(image[y : y + h, x : x + w]))]
    on_frame = pipeline.detect(image, 0)
    assert len(on_region) == len(on_frame) == 1
    assert np.allclose(on_region[0].box, on_frame[0].box, atol=4.0)
    assert np.allclose(on_region[0].landmarks, on_frame[0].landmarks, atol=6.0)
    assert on_region[0].box[0] > 900 - 20  # in the frame's pixels, not the region's
    (a,), (b,) = pipeline.faces(image, on_region), pipeline.faces(image, on_frame)
    assert a.embedding is not None and b.embedding is not None
    assert float(a.embedding @ b.embedding) >= COSINE_FLOOR, float(a.embedding @ b.embedding)


def test_motion_option_off_true_and_settings() -> None:
    assert motion_settings(False).enabled is False
    assert motion_settings(True) == MotionSettings()
    assert motion_settings(MotionSettings(threshold=40)).threshold == 40


def test_motion_region_is_detected_at_the_whole_frames_scale(
    scene: np.ndarray, face: np.ndarray, pipeline: FacePipeline
) -> None:
    """A region costs its share of a whole-frame run: its side scaled as the frame's is (640 of 1280), and
    the face found there is the one the whole frame at 640 finds."""
    image = camera_frame(pasted(scene, face, 900, 380), np.random.default_rng(6))
    region = (820, 300, 400, 400)
    assert region_size(DetectRequest(image, region, None), 640) == 200
    assert region_size(DetectRequest(image, (0, 0, WIDTH, HEIGHT), None), 640) == 640
    assert region_size(DetectRequest(image, region, 0), 640) == 0  # 0: full resolution, as the frame
    assert region_size(DetectRequest(image[:240, :320], (0, 0, 100, 100), None), 640) == 640  # never larger
    (on_region,) = detect_and_embed(
        pipeline, [DetectRequest(image, region, None)], BatchSettings(), Timings()
    )
    on_frame = pipeline.detect(image)
    assert len(on_region) == len(on_frame) == 1
    assert np.allclose(on_region[0].detection.box, on_frame[0].box, atol=3.0)


def test_motion_person_standing_still_is_detected_around_the_track_only(
    tmp_path: Path, scene: np.ndarray, face: np.ndarray, pipeline: FacePipeline
) -> None:
    rng = np.random.default_rng(7)
    outbox, sequences = Outbox(tmp_path / "outbox.db").open(), Sequences(tmp_path / "seq.db")
    camera = Camera(id="cam-1", source="/x.mp4", kind="video")
    processor = FrameProcessor(
        camera, site="s1", edge="e1", pipeline=pipeline, tracker=Tracker("cam-1"),
        outbox=outbox, sequences=sequences, metrics=EdgeMetrics(),
    )  # fmt: skip
    regions: list[tuple[int, int, int, int] | None] = []
    plan = processor.plan

    def noted(frame: Frame) -> Planned:  # the real plan, its region noted
        planned = plan(frame)
        regions.append(planned.region)
        return planned

    processor.plan = noted  # type: ignore[method-assign]
    standing = pasted(scene, face, 900, 380)
    for n, image in enumerate([scene, scene, standing, standing, standing]):
        frame = Frame("cam-1", n, n * 0.2, 1e9 + n * 0.2, camera_frame(image, rng))
        process_frames([(processor, frame)], [])
    outbox.close()
    sequences.close()
    assert regions[0] == (0, 0, WIDTH, HEIGHT) and regions[1] is None  # first look, then a still scene
    assert regions[2] is not None and regions[2] != (0, 0, WIDTH, HEIGHT)  # where the person came in
    for x, y, w, h in (r for r in regions[3:] if r is not None):  # standing still: around the track
        assert x <= 900 and y <= 380 and x + w >= 1140 and y + h >= 620 and w * h < WIDTH * HEIGHT / 2
    assert None not in regions[3:] and len(processor.tracker.tracks) == 1
