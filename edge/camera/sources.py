"""Camera sources: one reader thread per camera, an explicit state machine, latest-frame delivery.

States (`SourceState`) and their transitions:

    CONNECTING  -> STREAMING    opened
    CONNECTING  -> BACKING_OFF  cannot open: a missing file or folder, an unreachable stream (retried)
    STREAMING   -> BACKING_OFF  the stream broke (no frame within read_timeout_s), or the reader crashed
    BACKING_OFF -> CONNECTING   the delay is over (each such attempt counts in `stats.reconnects`)
    any         -> FAILED       a file that is not a video; terminal: the same bytes will not get better
    STREAMING   -> ENDED        a non-looping file reached its end; terminal (a looping one starts again)
    any         -> STOPPED      stop(); terminal, and the state of a source not started yet

Back-off delays (`common.backoff.Backoff`, without jitter) grow by `backoff_factor` from `backoff_min_s`
up to `backoff_max_s`, and start again at `backoff_min_s` once a connection has streamed for
`reset_after_s`.

Frames. The reader keeps only the latest frame, in a one-slot mailbox (drop policy "latest": a frame
not taken before the next one arrives is replaced and counted in `stats.dropped`), so a slow pipeline
never builds a backlog. Frames over `fps_cap` are kept out of the mailbox at the reader and counted in
`stats.skipped`; those the cap will drop are only grabbed, not converted into images. For image
folders the cap paces reading instead, since each image is its own capture.
Video files are paced at their native fps unless `realtime=False`.

Errors never leave the reader thread: each logs a stable event with the camera id and counts in
`stats.errors`. source_file_missing, source_folder_missing, source_folder_unreadable,
source_connect_failed, source_read_failed: BACKING_OFF. source_not_a_video: FAILED.
source_image_unreadable: the image is skipped (also `stats.unreadable`). source_crashed (an unexpected
exception, logged with its traceback): BACKING_OFF.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlparse

from common.backoff import Backoff
from common.pipeline.image import Frame as Image
from common.pipeline.image import ImageLimits
from edge.camera.pacing import Arrivals, Mailbox, Pacer, RateCap, grab_only
from edge.camera.readers import (
    EndOfVideo,
    FolderOrder,
    FolderReader,
    FrameReader,
    Recovery,
    SourceError,
    Timeouts,
    VideoReader,
    redact,
)

log = logging.getLogger(__name__)

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"})


class SourceKind(StrEnum):
    VIDEO = "video"  # a video file, read at its native fps (optionally looped)
    STREAM = "stream"  # RTSP, HTTP, ... through OpenCV's FFmpeg backend
    FOLDER = "folder"  # new image files in a folder


class SourceState(StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"
    ENDED = "ended"
    FAILED = "failed"
    STOPPED = "stopped"


TERMINAL = frozenset({SourceState.ENDED, SourceState.FAILED, SourceState.STOPPED})


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One captured image. `number` counts every image the reader got since start (0-based), skipped and
    dropped ones included, so a gap in the numbers a consumer sees is what it missed."""

    camera_id: str
    number: int
    monotonic: float  # time.monotonic() at capture
    wall: float  # time.time() at capture
    image: Image = field(repr=False)


@dataclass(frozen=True, slots=True)
class SourceSettings:
    fps_cap: float | None = None  # files and streams: frames over the cap are skipped; folders: paced
    loop: bool = False  # video files: start again at the end; folders: read every image again
    realtime: bool = True  # files: read at native fps; False reads as fast as possible (tests, benchmarks)
    backoff_min_s: float = 1.0  # the wait after the first failed or short-lived connection
    backoff_max_s: float = 30.0  # the longest wait
    backoff_factor: float = 2.0  # each further failure multiplies the wait by this
    reset_after_s: float = 30.0  # streaming this long counts as a success: the next wait is backoff_min_s
    open_timeout_s: float = 10.0  # streams: CAP_PROP_OPEN_TIMEOUT_MSEC
    read_timeout_s: float = 5.0  # streams: CAP_PROP_READ_TIMEOUT_MSEC; no frame this long = stream lost
    folder_order: FolderOrder = "name"
    poll_s: float = 0.5  # folders: rescan interval when nothing new
    settle_s: float = 1.0  # folders: a file is read once its mtime is this old
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    # > 0: a crop stream; its last `history` frames are kept for `nearest()` instead of the mailbox
    history: int = 0


@dataclass(frozen=True, slots=True)
class SourceStats:
    frames: int = 0  # frames put in the mailbox
    dropped: int = 0  # frames replaced in the mailbox before being taken
    skipped: int = 0  # frames the fps cap kept out of the mailbox
    grabbed: int = 0  # of those, frames only grabbed, never converted into an image
    reconnects: int = 0  # connection attempts after the first
    errors: int = 0  # failed opens, failed reads, unreadable images, reader crashes
    unreadable: int = 0  # folder images skipped as unreadable (also counted in errors)


@dataclass(frozen=True, slots=True)
class StateChange:
    camera_id: str
    old: SourceState
    new: SourceState
    reason: str
    monotonic: float


StateListener = Callable[[StateChange], None]


def infer_kind(url: str) -> SourceKind:
    """A stream for a URL with a network scheme, a folder for an existing directory, else a file."""
    if urlparse(url).scheme.lower() in STREAM_SCHEMES:
        return SourceKind.STREAM
    return SourceKind.FOLDER if Path(url).is_dir() else SourceKind.VIDEO


class CameraSource:
    """Reads one camera on its own thread and keeps only its latest frame for `latest()`.

    `on_state` is called at every state change (on the reader thread; the first, to CONNECTING, on the
    thread calling `start()`); it must be quick and must not raise.
    """

    def __init__(
        self,
        camera_id: str,
        url: str,
        kind: SourceKind,
        settings: SourceSettings = SourceSettings(),
        on_state: StateListener | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.url = url
        self.kind = kind
        self.settings = settings
        self._on_state = on_state
        self._state = SourceState.STOPPED
        self._mailbox: Mailbox[Frame] = Mailbox()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counts = {f.name: 0 for f in fields(SourceStats)}
        self._thread: threading.Thread | None = None
        self._reader: FrameReader | None = None  # used by the reader thread only
        self._backoff = Backoff(  # used by the reader thread only
            settings.backoff_min_s, settings.backoff_max_s, factor=settings.backoff_factor, jitter=False
        )
        self._number = 0
        self._history: deque[Frame] = deque(maxlen=max(1, settings.history))

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def stats(self) -> SourceStats:
        with self._lock:
            return SourceStats(**self._counts)

    def start(self) -> None:
        """Start the reader thread (CONNECTING). A source runs once: create a new one to restart."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id} was already started")
        self._set_state(SourceState.CONNECTING, "start")
        self._thread = threading.Thread(target=self._run, name=f"source-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the reader to stop and wait for it (default: as long as a blocked open or read can take)."""
        self._stop.set()
        self._mailbox.close()
        if self._thread is not None:
            limit = self.settings.open_timeout_s + self.settings.read_timeout_s + 1.0
            self._thread.join(limit if timeout is None else timeout)
            if self._thread.is_alive():
                log.warning("source_stop_timeout", extra={"camera": self.camera_id})

    def nearest(self, monotonic: float) -> Frame | None:
        """Of the frames kept (`history`), the one captured nearest to `monotonic`; None before the first."""
        with self._lock:
            frames = list(self._history)
        return min(frames, key=lambda f: abs(f.monotonic - monotonic), default=None)

    def latest(self, timeout: float = 1.0) -> Frame | None:
        """Take the latest frame, waiting up to `timeout` seconds; None if none came (or stopped)."""
        return self._mailbox.take(timeout)

    # The reader thread: one state's work per step until a terminal state.

    def _run(self) -> None:
        while not self._stop.is_set() and self._state not in TERMINAL:
            try:
                if self._state is SourceState.CONNECTING:
                    self._connect()
                elif self._state is SourceState.STREAMING:
                    self._stream()
                elif self._state is SourceState.BACKING_OFF:
                    self._back_off()
            except Exception as err:
                log.exception("source_crashed", extra={"camera": self.camera_id})
                self._count("errors")
                self._close()
                self._set_state(SourceState.BACKING_OFF, f"reader crashed: {err!r}")
        self._close()
        if self._state not in TERMINAL:
            self._set_state(SourceState.STOPPED, "stop requested")
        self._mailbox.close()

    def _connect(self) -> None:
        try:
            self._reader = self._open()
        except SourceError as err:
            self._fail(err)
            return
        self._set_state(SourceState.STREAMING, "opened")

    def _open(self) -> FrameReader:
        s = self.settings
        if self.kind is SourceKind.VIDEO:
            return VideoReader.open_file(Path(self.url), s.loop)
        if self.kind is SourceKind.FOLDER:
            return FolderReader.open(Path(self.url), s.folder_order, s.settle_s, s.image_limits, s.loop)
        return VideoReader.open_stream(self.url, Timeouts(s.open_timeout_s, s.read_timeout_s))

    def _stream(self) -> None:
        """Read until stopped or the stream breaks; a long enough run resets the back-off."""
        reader = self._reader
        if reader is None:
            raise RuntimeError("streaming without a reader")
        started = time.monotonic()
        cap = RateCap(None if self.kind is SourceKind.FOLDER else self.settings.fps_cap)
        pacer = Pacer(self._pace_fps(reader))
        arrivals = Arrivals()
        try:
            while not self._stop.is_set():
                if self.kind is SourceKind.FOLDER:
                    image = self._next_image(reader, pacer)
                    if image is not None:
                        self._deliver(image, cap)
                else:
                    self._next_frame(reader, pacer, cap, arrivals)
        except SourceError as err:
            self._fail(err)
        except EndOfVideo:
            self._set_state(SourceState.ENDED, "end of file")
        finally:
            self._close()
        if time.monotonic() - started >= self.settings.reset_after_s:
            self._backoff.reset()

    def _next_frame(self, reader: FrameReader, pacer: Pacer, cap: RateCap, arrivals: Arrivals) -> None:
        """The next frame of a file or stream, paced. When the fps cap will drop it (`grab_only`), it is
        only grabbed, not converted into an image (docs/edge.md, "Decoding")."""
        pacer.wait(self._stop)
        if grab_only(cap, arrivals, time.monotonic()):
            reader.skip()
            arrivals.seen(time.monotonic())
            self._number += 1
            self._count("skipped", "grabbed")
            return
        image = reader.read()
        arrivals.seen(time.monotonic())
        if image is not None:
            self._deliver(image, cap)

    def _next_image(self, reader: FrameReader, pacer: Pacer) -> Image | None:
        """The next image, paced; None when there is none yet (or it was skipped as unreadable)."""
        try:
            image = reader.read()
        except SourceError as err:
            if err.recovery is not Recovery.SKIP:
                raise
            self._log_error(err)
            self._count("errors", "unreadable")
            return None
        if image is None:
            self._stop.wait(self.settings.poll_s)
        else:
            pacer.wait(self._stop)
        return image

    def _pace_fps(self, reader: FrameReader) -> float:
        if self.kind is SourceKind.FOLDER:
            return self.settings.fps_cap or 0.0
        return reader.fps if self.settings.realtime else 0.0

    def _deliver(self, image: Image, cap: RateCap) -> None:
        number, self._number = self._number, self._number + 1
        now = time.monotonic()
        if not cap.allow(now):
            self._count("skipped")
            return
        frame = Frame(self.camera_id, number, now, time.time(), image)
        self._count("frames")
        if self.settings.history:
            with self._lock:
                self._history.append(frame)
        elif self._mailbox.put(frame):
            self._count("dropped")

    def _back_off(self) -> None:
        self._stop.wait(self._backoff.next())
        if not self._stop.is_set():
            self._count("reconnects")
            failures = self._backoff.failures
            self._set_state(SourceState.CONNECTING, f"reconnect attempt after {failures} failure(s)")

    def _fail(self, err: SourceError) -> None:
        self._log_error(err)
        self._count("errors")
        failed = err.recovery is Recovery.FAIL
        self._set_state(SourceState.FAILED if failed else SourceState.BACKING_OFF, str(err))

    def _close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _log_error(self, err: SourceError) -> None:
        level = logging.ERROR if err.recovery is Recovery.FAIL else logging.WARNING
        extra = {"camera": self.camera_id, "url": redact(self.url), "reason": str(err)}
        log.log(level, err.event, extra=extra)

    def _count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._counts[name] += 1

    def _set_state(self, new: SourceState, reason: str) -> None:
        old, self._state = self._state, new
        if old is new:
            return
        log.info("source_state", extra={"camera": self.camera_id, "from": old, "to": new, "reason": reason})
        if self._on_state is not None:
            self._on_state(StateChange(self.camera_id, old, new, reason, time.monotonic()))
