"""Inference workers: threads that take the cameras' latest frames through the models, batch by batch.

Each pass of a worker claims the latest frame of every camera that has one and that no other worker is
processing, and runs them through the models together (`process_frames`, in batches of
`batching.max_frames`). A camera is claimed by one worker at a time, so its frames still reach its
tracker one after another, in order; which worker takes a camera changes from pass to pass, so the
load spreads by itself. With one worker (the default on a GPU: one full batch keeps the CUDA provider
busy) every waiting frame goes into one batch; on a CPU two workers keep both cores of a small box busy
while the models' own threads wait on each other (docs/edge.md, "Inference workers").
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from common.errors import FacegateError
from edge.camera.sources import CameraSource, Frame
from edge.config.schema import BatchSettings
from edge.inference.frames import FrameProcessor, GalleryMatcher, process_frames

log = logging.getLogger(__name__)

Cameras = Callable[[], list[tuple[FrameProcessor, CameraSource]]]
Waiting = dict[str, tuple[FrameProcessor, Frame]]
IDLE_S = 0.005  # a worker with nothing to do looks again after this long


def worker_count(setting: int, on_gpu: bool) -> int:
    """`batching.workers`, with 0 (auto) read as 1 on a GPU and min(2, CPUs) on a CPU."""
    if setting:
        return setting
    return 1 if on_gpu else max(1, min(2, os.cpu_count() or 1))


class Scheduler:
    """Claims frames for workers and runs them; `run_once` is one pass of one worker."""

    def __init__(
        self,
        cameras: Cameras,
        matchers: Callable[[], list[GalleryMatcher]],
        settings: BatchSettings,
        *,
        workers: int = 1,
        on_batch: Callable[[], None],
        on_error: Callable[[str, FacegateError], None],
    ) -> None:
        self._cameras, self._matchers, self.settings = cameras, matchers, settings
        self._on_batch, self._on_error = on_batch, on_error
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # cameras a worker is processing a frame of
        self.workers = workers
        self._turn = 0  # where the next pass starts looking, so no camera always comes last
        self._threads: list[threading.Thread] = []
        self.crashed: BaseException | None = None  # what stopped a helper worker (then `stop` is set)

    def run_once(self) -> bool:
        """One pass: the frames waiting at the unclaimed cameras, through the models together; False when
        none had a frame."""
        cameras = self._cameras()
        share = self._share(len(cameras))
        waiting = self._claim(cameras, {}, share)
        if not waiting:
            return False
        try:
            if self.settings.max_wait_ms and len(waiting) < share:
                deadline = time.monotonic() + self.settings.max_wait_ms / 1000
                while len(waiting) < share and time.monotonic() < deadline:
                    time.sleep(0.002)
                    self._claim(cameras, waiting, share)
            matchers = self._matchers()
            items = list(waiting.values())
            for start in range(0, len(items), self.settings.max_frames):
                chunk = items[start : start + self.settings.max_frames]
                try:
                    process_frames(chunk, matchers, self.settings)
                except FacegateError as err:
                    for processor, _ in chunk:
                        self._on_error(processor.camera.id, err)
                self._on_batch()
        finally:
            with self._lock:
                self._busy.difference_update(waiting)
        return True

    def _share(self, cameras: int) -> int:
        """The most frames one pass claims: `max_frames`, and with several workers no more than the
        cameras over the workers, so an idle worker finds frames left to take."""
        return min(self.settings.max_frames, max(1, -(-cameras // self.workers)))

    def _claim(
        self, cameras: list[tuple[FrameProcessor, CameraSource]], waiting: Waiting, limit: int
    ) -> Waiting:
        """Add to `waiting` the latest frame of each camera that has one and is not claimed yet, up to
        `limit` frames in all. Each call starts one camera further on."""
        with self._lock:
            self._turn = (self._turn + 1) % max(1, len(cameras))
            for processor, source in cameras[self._turn :] + cameras[: self._turn]:
                camera_id = processor.camera.id
                if len(waiting) >= limit:
                    break
                if camera_id in waiting or camera_id in self._busy:
                    continue
                frame = source.latest(timeout=0)
                if frame is not None:
                    waiting[camera_id] = (processor, frame)
                    self._busy.add(camera_id)
        return waiting

    def start_helpers(self, stop: threading.Event) -> None:
        """Start `workers - 1` worker threads; the caller's own loop is the first worker."""
        for k in range(1, self.workers):
            thread = threading.Thread(target=self._work, args=(stop,), name=f"inference-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self, stop: threading.Event) -> None:
        """A helper worker's loop. An unexpected error stops the daemon as one in the first worker does
        (the daemon re-raises `crashed`), rather than leaving it running on fewer workers unnoticed."""
        try:
            while not stop.is_set():
                if not self.run_once():
                    stop.wait(IDLE_S)
        except BaseException as err:
            log.exception("inference_worker_crashed")
            self.crashed = err
            stop.set()

    def join(self, timeout: float = 10.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
