"""Frames of several cameras through the models together: one detector run for frames of one size,
one embedder run for all their faces, and the same faces as one camera at a time."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.pipeline.pipeline import FacePipeline, Timings
from demo.sample_faces import SamplePhoto
from edge.assembly import tracker_settings
from edge.camera.sources import Frame
from edge.config.schema import BatchSettings, BrokerSettings, Camera, CentralSettings, DeviceConfig
from edge.delivery.outbox import Outbox
from edge.delivery.sequence import Sequences
from edge.inference.batch import DetectRequest, detect_and_embed
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
def frames(samples: dict[str, SamplePhoto]) -> list[np.ndarray]:
    """Three 1280x720 camera frames, a different person in each, at a different place."""
    out = []
    for name, x in (("obama2", 100), ("biden", 500), ("grace_hopper", 760)):
        photo = read(samples[name].path)
        scale = 420 / photo.shape[0]
        small = np.asarray(cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        small = small[:, : 1280 - x]
        frame = np.full((720, 1280, 3), 110, dtype=np.uint8)
        frame[150 : 150 + small.shape[0], x : x + small.shape[1]] = small
        out.append(frame)
    return out


def _runs(pipeline: FacePipeline) -> tuple[int, int, int, int]:
    assert pipeline.embedder is not None
    det, emb = pipeline.detector.model.stats, pipeline.embedder.model.stats
    return det.calls, det.rows, emb.calls, emb.rows


def test_batch_three_cameras_one_detector_and_one_embedder_run_same_faces(
    pipeline: FacePipeline, frames: list[np.ndarray]
) -> None:
    requests = [DetectRequest(f, (0, 0, 1280, 720), None) for f in frames]
    before = _runs(pipeline)
    batched = detect_and_embed(pipeline, requests, BatchSettings(), Timings())
    det_calls, det_rows, emb_calls, emb_rows = (a - b for a, b in zip(_runs(pipeline), before, strict=True))
    embedded = sum(f.embedding is not None for faces in batched for f in faces)
    assert pipeline.detector.batches  # YuNet on onnxruntime takes frames of one size together
    assert (det_calls, det_rows) == (1, 3)
    assert (emb_calls, emb_rows) == (1, embedded) and embedded >= 3
    for frame, faces in zip(frames, batched, strict=True):
        alone = pipeline.process(frame)
        assert len(alone) == len(faces) >= 1
        for a, b in zip(alone, faces, strict=True):
            assert float(np.abs(a.detection.box - b.detection.box).max()) < 0.5
            assert a.embedding is not None and b.embedding is not None
            assert float(a.embedding @ b.embedding) >= 0.999


def test_batch_max_frames_splits_the_detector_runs(pipeline: FacePipeline, frames: list[np.ndarray]) -> None:
    before = _runs(pipeline)
    found = pipeline.detector.detect_many([(f, None) for f in frames], max_batch=2)
    assert [len(f) >= 1 for f in found] == [True] * 3
    assert _runs(pipeline)[0] - before[0] == 2


def test_process_frames_three_cameras_waiting_take_one_batch(
    tmp_path: Path, pipeline: FacePipeline, frames: list[np.ndarray]
) -> None:
    outbox = Outbox(tmp_path / "outbox.db").open()
    sequences = Sequences(tmp_path / "seq.db")
    processors = [
        FrameProcessor(
            Camera(id=f"cam{i}", source="/x.mp4", kind="video", motion=False),
            site="s1",
            edge="e1",
            pipeline=pipeline,
            tracker=Tracker(f"cam{i}", tracker_settings(DEVICE)),
            outbox=outbox,
            sequences=sequences,
            metrics=EdgeMetrics(),
        )
        for i in range(3)
    ]
    before = _runs(pipeline)
    items = [
        (p, Frame(p.camera.id, 0, time.monotonic(), time.time(), f))
        for p, f in zip(processors, frames, strict=True)
    ]
    assert process_frames(items, []) == [[], [], []]  # one frame: no track is confirmed yet
    det_calls, det_rows, emb_calls, _ = (a - b for a, b in zip(_runs(pipeline), before, strict=True))
    assert (det_calls, det_rows, emb_calls) == (1, 3, 1)
    assert all(len(p.tracker.tracks) >= 1 for p in processors)
    outbox.close()
    sequences.close()
