"""Inference workers on real camera sources and the real pipeline: two workers share the cameras, each
camera's frames reach its processor one at a time and in order, and a pass leaves frames for the other."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from common.messages import Event
from common.pipeline.face import Face
from common.pipeline.pipeline import FacePipeline, Timings
from demo.sample_faces import SamplePhoto
from edge.camera.sources import CameraSource, Frame, SourceKind, SourceSettings
from edge.config.schema import BatchSettings, Camera
from edge.delivery.outbox import Outbox
from edge.delivery.sequence import Sequences
from edge.inference.frames import FrameProcessor, GalleryMatcher, Planned
from edge.inference.scheduler import Scheduler, worker_count
from edge.inference.tracker import Tracker
from edge.ops.metrics import EdgeMetrics
from tests.support.videos import compose_visit_video

CAMERAS = 4


class Recording(FrameProcessor):
    """A real processor that notes when each frame's work starts and ends, and on which thread."""

    log: list[tuple[str, int, float, float, str]]  # camera, frame number, start, end, thread

    def plan(self, frame: Frame) -> Planned:
        self._started = time.monotonic()
        return super().plan(frame)

    def finish(
        self, planned: Planned, faces: list[Face], matchers: list[GalleryMatcher], timings: Timings
    ) -> list[Event]:
        events = super().finish(planned, faces, matchers, timings)
        entry = (self.camera.id, planned.frame.number, self._started, time.monotonic())
        self.log.append((*entry, threading.current_thread().name))
        return events


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, samples: dict[str, SamplePhoto]) -> Path:
    photos = [samples["obama"].path, samples["grace_hopper"].path]
    path = tmp_path_factory.mktemp("clip") / "visits.mp4"
    return compose_visit_video(path, photos, 0.8, 25.0, (320, 240), gap_s=0.2)


def test_two_workers_share_cameras_one_frame_at_a_time_in_order(
    tmp_path: Path, clip: Path, pipeline: FacePipeline
) -> None:
    outbox, sequences = Outbox(tmp_path / "outbox.db").open(), Sequences(tmp_path / "seq.db")
    log: list[tuple[str, int, float, float, str]] = []
    pairs: list[tuple[FrameProcessor, CameraSource]] = []
    for i in range(CAMERAS):
        camera = Camera(id=f"cam{i}", source=str(clip), kind="video", motion=False, loop=True)
        processor = Recording(
            camera, site="s1", edge="e1", pipeline=pipeline, tracker=Tracker(camera.id),
            outbox=outbox, sequences=sequences, metrics=EdgeMetrics(),
        )  # fmt: skip
        processor.log = log
        source = CameraSource(camera.id, str(clip), SourceKind.VIDEO, SourceSettings(loop=True))
        pairs.append((processor, source))
    settings = BatchSettings(max_frames=8)
    scheduler = Scheduler(lambda: pairs, list, settings, workers=2, on_batch=lambda: None, on_error=print)
    stop = threading.Event()
    for _, source in pairs:
        source.start()
    try:
        scheduler.start_helpers(stop)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and scheduler.crashed is None:
            if not scheduler.run_once():
                time.sleep(0.005)
    finally:
        stop.set()
        scheduler.join()
        for _, source in pairs:
            source.stop()
        outbox.close()
        sequences.close()
    assert scheduler.crashed is None
    assert {thread for *_, thread in log} == {threading.current_thread().name, "inference-1"}
    for i in range(CAMERAS):
        mine = sorted((start, end, number) for cam, number, start, end, _ in log if cam == f"cam{i}")
        assert len(mine) >= 10, f"cam{i} processed {len(mine)} frames in 3 s"
        numbers = [number for *_, number in mine]
        assert numbers == sorted(set(numbers)), f"cam{i}: frames out of order or twice"
        for (_, end, _), (start, _, _) in itertools.pairwise(mine):
            assert start >= end, f"cam{i}: two frames processed at once"


def test_a_pass_claims_its_share_so_the_other_worker_finds_frames(
    tmp_path: Path, clip: Path, pipeline: FacePipeline
) -> None:
    """Six cameras with a frame each waiting, two workers: a pass takes three and leaves three; a camera
    being processed is not claimed again until its pass ends."""
    pairs: list[tuple[FrameProcessor, CameraSource]] = []
    for i in range(6):
        camera = Camera(id=f"cam{i}", source=str(clip), kind="video", motion=False)
        processor = FrameProcessor(
            camera, site="s1", edge="e1", pipeline=pipeline, tracker=Tracker(camera.id),
            outbox=Outbox(tmp_path / f"o{i}.db"), sequences=Sequences(tmp_path / f"s{i}.db"),
            metrics=EdgeMetrics(),
        )  # fmt: skip
        source = CameraSource(camera.id, str(clip), SourceKind.VIDEO, SourceSettings(realtime=False))
        pairs.append((processor, source))
    scheduler = Scheduler(
        lambda: pairs, list, BatchSettings(), workers=2, on_batch=lambda: None, on_error=print
    )
    for _, source in pairs:
        source.start()
    try:
        time.sleep(0.5)  # every source has a frame waiting
        share = scheduler._share(len(pairs))
        first = scheduler._claim(pairs, {}, share)
        second = scheduler._claim(pairs, {}, share)
        third = scheduler._claim(pairs, {}, share)
    finally:
        for _, source in pairs:
            source.stop()
    assert len(first) == len(second) == 3 and not set(first) & set(second)
    assert third == {}  # every camera is claimed


def test_worker_count_auto_is_one_on_a_gpu_two_on_a_cpu() -> None:
    assert worker_count(0, on_gpu=True) == 1
    assert worker_count(0, on_gpu=False) == min(2, os.cpu_count() or 1)
    assert worker_count(3, on_gpu=True) == 3


def test_a_helper_workers_unexpected_error_stops_the_loop_and_is_kept() -> None:
    """A bug in a helper worker must not leave the daemon running on fewer workers unnoticed."""
    calls = 0

    def cameras() -> list[tuple[FrameProcessor, CameraSource]]:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug")

    scheduler = Scheduler(cameras, list, BatchSettings(), workers=2, on_batch=lambda: None, on_error=print)
    stop = threading.Event()
    scheduler.start_helpers(stop)
    assert stop.wait(5.0)
    scheduler.join()
    assert isinstance(scheduler.crashed, RuntimeError) and calls >= 1
