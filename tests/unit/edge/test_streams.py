"""A camera's detection stream (low resolution) and crop stream (main): boxes and landmarks found on
the first are mapped onto the second, and faces are aligned on the main stream's pixels."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.pipeline.face import Detection
from common.pipeline.pipeline import FacePipeline, Timings
from demo.sample_faces import SamplePhoto
from edge.assembly import tracker_settings
from edge.camera.sources import Frame
from edge.config.schema import BatchSettings, BrokerSettings, Camera, CentralSettings, DeviceConfig
from edge.delivery.outbox import Outbox
from edge.delivery.sequence import Sequences
from edge.inference.batch import DetectRequest, detect_and_embed, scaled, to_crop_stream
from edge.inference.frames import FrameProcessor, process_frames
from edge.inference.tracker import Tracker
from edge.ops.metrics import EdgeMetrics
from tests.support.faces import read

DEVICE = DeviceConfig(
    site="s1",
    edge="e1",
    broker=BrokerSettings(url="mqtt://127.0.0.1"),
    central=CentralSettings(url="http://c", key_id="k", secret="x"),
)


@pytest.fixture(scope="module")
def streams(samples: dict[str, SamplePhoto]) -> tuple[np.ndarray, np.ndarray]:
    """A 1920x1080 main-stream frame with a face right of centre, and its 640x360 sub-stream."""
    photo = read(samples["obama2"].path)
    scale = 700 / photo.shape[0]
    small = np.asarray(cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    main = np.full((1080, 1920, 3), 110, dtype=np.uint8)
    main[200 : 200 + small.shape[0], 1100 : 1100 + small.shape[1]] = small[:, : 1920 - 1100]
    sub = np.asarray(cv2.resize(main, (640, 360), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return main, sub


def test_scaled_detection_box_and_landmarks_multiply_per_axis() -> None:
    det = Detection(np.array([10, 20, 30, 40], np.float32), np.full((5, 2), [5, 8], np.float32), 0.9)
    out = scaled(det, 2.0, 1.5)
    assert out.box.tolist() == [20, 30, 60, 60] and out.landmarks[0].tolist() == [10, 12]
    assert out.score == 0.9


def test_to_crop_stream_sub_stream_boxes_land_on_the_main_streams_face(
    pipeline: FacePipeline, streams: tuple[np.ndarray, np.ndarray]
) -> None:
    main, sub = streams
    (on_main,) = pipeline.detect(main, 640)  # the main stream shrunk to the sub-stream's size, mapped back
    (mapped,) = to_crop_stream(pipeline.detect(sub, 0), sub, main)
    assert float(np.abs(mapped.box - on_main.box).max()) < 3.0  # one sub-stream pixel is 3 here
    assert float(np.abs(mapped.landmarks - on_main.landmarks).max()) < 3.0


def test_detect_and_embed_with_crop_image_aligns_on_the_main_stream(
    pipeline: FacePipeline, streams: tuple[np.ndarray, np.ndarray]
) -> None:
    main, sub = streams
    request = DetectRequest(sub, (0, 0, 640, 360), None, crop_image=main)
    ((face,),) = detect_and_embed(pipeline, [request], BatchSettings(), Timings())
    (alone,) = pipeline.process(main)
    assert face.crop is not None and face.embedding is not None and alone.embedding is not None
    assert face.detection.box[0] > 1000  # in main-stream pixels
    assert float(face.embedding @ alone.embedding) >= 0.98


def test_frame_processor_detect_stream_tracks_in_main_stream_pixels(
    tmp_path: Path, pipeline: FacePipeline, streams: tuple[np.ndarray, np.ndarray]
) -> None:
    main, sub = streams
    now = time.monotonic()
    main_frame = Frame("door", 0, now, time.time(), main)
    outbox, sequences = Outbox(tmp_path / "outbox.db").open(), Sequences(tmp_path / "seq.db")
    processor = FrameProcessor(
        Camera(id="door", source="rtsp://h/main", detect_source="rtsp://h/sub", kind="stream", motion=False),
        site="s1",
        edge="e1",
        pipeline=pipeline,
        tracker=Tracker("door", tracker_settings(DEVICE)),
        outbox=outbox,
        sequences=sequences,
        metrics=EdgeMetrics(),
        crops=lambda t: main_frame if abs(t - now) < 1 else None,
    )
    process_frames([(processor, Frame("door", 0, now, time.time(), sub))], [])
    (track,) = processor.tracker.tracks
    assert track.box[0] > 1000 and track.box[2] > 150  # the main stream's pixels, not the sub-stream's
    outbox.close()
    sequences.close()
