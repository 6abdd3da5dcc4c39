"""Readers behind a camera source: video files and streams through OpenCV's FFmpeg backend, image folders.

A reader is opened, read and closed by one reader thread (`edge.camera.sources.CameraSource`). `read()`
returns the next image, or None when an image folder has nothing new yet; it raises `EndOfVideo` at the
end of a file and `SourceError` for everything else, whose `recovery` tells the source what to do next.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from common.errors import FacegateError, ImageError
from common.pipeline.image import Frame as Image
from common.pipeline.image import ImageLimits, load_image

FolderOrder = Literal["name", "mtime"]
DEFAULT_FILE_FPS = 25.0  # when a file does not say (or says nonsense)


class Recovery(StrEnum):
    """What a source does after an error: skip the item, reconnect after a back-off, or give up."""

    SKIP = "skip"
    RETRY = "retry"
    FAIL = "fail"


class SourceError(FacegateError):
    """A source could not be opened or read; `event` is the stable log event name."""

    def __init__(self, event: str, message: str, recovery: Recovery = Recovery.RETRY) -> None:
        super().__init__(message)
        self.event = event
        self.recovery = recovery


class EndOfVideo(Exception):  # noqa: N818 (a signal, like StopIteration, not an error)
    """A video file has no more frames."""


class FrameReader(Protocol):
    @property
    def fps(self) -> float:
        """The rate to pace reading at: a file's native fps; 0 for live streams and folders."""
        ...

    def read(self) -> Image | None: ...

    def skip(self) -> None:
        """Move past the next image without converting it (a frame the fps cap would drop anyway)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    open_s: float
    read_s: float


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for logs."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


class VideoReader:
    """A video file or a stream (RTSP, HTTP, ...) read with cv2.VideoCapture(url, cv2.CAP_FFMPEG)."""

    def __init__(self, capture: cv2.VideoCapture, fps: float, url: str, live: bool, loop: bool) -> None:
        self._capture = capture
        self._fps = fps
        self._url = url
        self._live = live
        self._loop = loop
        self._frames = 0  # decoded since the file was (re)opened

    @property
    def fps(self) -> float:
        return self._fps

    @classmethod
    def open_file(cls, path: Path, loop: bool = False) -> VideoReader:
        """A video file; with `loop`, reading starts again at its first frame after the last."""
        if not path.is_file():
            raise SourceError("source_file_missing", f"no video file at {path}: check the camera's url")
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise SourceError(
                "source_not_a_video",
                f"{path} is not a video OpenCV's FFmpeg backend can read: check the file",
                Recovery.FAIL,
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        return cls(capture, fps if 0.0 < fps <= 240.0 else DEFAULT_FILE_FPS, str(path), False, loop)

    @classmethod
    def open_stream(cls, url: str, timeouts: Timeouts) -> VideoReader:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(timeouts.open_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(timeouts.read_s * 1000),
        ]  # fmt: skip
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            raise SourceError(
                "source_connect_failed", f"cannot open {redact(url)}: check the address and the camera"
            )
        return cls(capture, 0.0, url, True, False)

    def read(self) -> Image:
        image = self._grab()
        if image is None and self._loop and self._frames > 0:
            self._rewind()
            image = self._grab()
        if image is not None:
            return image
        raise self._no_frame()

    def skip(self) -> None:
        """grab() without retrieve(): FFmpeg decodes the frame (the codec needs it for the next ones) but
        OpenCV skips the conversion to a BGR image, the larger part of a 720p frame's cost (docs/edge.md)."""
        ok = self._capture.grab()
        if not ok and self._loop and self._frames > 0:
            self._rewind()
            ok = self._capture.grab()
        if not ok:
            raise self._no_frame()
        self._frames += 1

    def _no_frame(self) -> SourceError | EndOfVideo:
        if self._live:
            return SourceError("source_read_failed", "the stream gave no frame within the read timeout")
        if self._frames == 0:
            return SourceError("source_not_a_video", "the file has no decodable frame", Recovery.FAIL)
        return EndOfVideo()

    def _rewind(self) -> None:
        self._capture.release()
        self._capture = cv2.VideoCapture(self._url, cv2.CAP_FFMPEG)
        self._frames = 0
        if not self._capture.isOpened():
            raise SourceError("source_file_missing", f"cannot open {self._url} again to loop it")

    def _grab(self) -> Image | None:
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        self._frames += 1
        return np.ascontiguousarray(image, dtype=np.uint8)

    def close(self) -> None:
        self._capture.release()


class FolderReader:
    """New image files in a folder, each read once, in name or modification-time order.

    Hidden files (a leading dot) are ignored, so writers can write `.name.tmp` and rename it. A file is
    taken once its modification time is `settle_s` old, so one still being written is left for a later
    scan. Names already read are remembered while they stay in the folder: a file removed and added
    again under the same name is read again. An unreadable file is skipped (`Recovery.SKIP`). With
    `loop`, once every file was read and none is new, they are all read again (a slideshow for demos).
    """

    def __init__(
        self, folder: Path, order: FolderOrder, settle_s: float, limits: ImageLimits, loop: bool
    ) -> None:
        self._folder = folder
        self._order = order
        self._settle_s = settle_s
        self._limits = limits
        self._loop = loop
        self._seen: set[str] = set()
        self._pending: deque[Path] = deque()

    @property
    def fps(self) -> float:
        return 0.0

    @classmethod
    def open(
        cls, folder: Path, order: FolderOrder, settle_s: float, limits: ImageLimits, loop: bool = False
    ) -> FolderReader:
        if not folder.is_dir():
            raise SourceError("source_folder_missing", f"no folder at {folder}: check the camera's url")
        return cls(folder, order, settle_s, limits, loop)

    def read(self) -> Image | None:
        if not self._pending:
            self._scan()
        if not self._pending and self._loop and self._seen:
            self._seen.clear()
            self._scan()
        if not self._pending:
            return None
        path = self._pending.popleft()
        try:
            return load_image(path, self._limits)
        except ImageError as err:
            raise SourceError("source_image_unreadable", f"{path.name}: {err}", Recovery.SKIP) from err

    def skip(self) -> None:
        """Pass over the next image unread (folders are paced by the cap instead, so this is not used)."""
        if not self._pending:
            self._scan()
        if self._pending:
            self._pending.popleft()

    def _scan(self) -> None:
        entries = self._list()
        self._seen &= {name for name, _ in entries}
        ready_before = time.time() - self._settle_s
        fresh = [(mtime, name) for name, mtime in entries if name not in self._seen and mtime <= ready_before]
        if self._order == "mtime":
            fresh.sort()
        else:
            fresh.sort(key=lambda item: item[1])
        self._seen.update(name for _, name in fresh)
        self._pending.extend(self._folder / name for _, name in fresh)

    def _list(self) -> list[tuple[str, float]]:
        """(name, mtime) of the regular, non-hidden files in the folder."""
        try:
            with os.scandir(self._folder) as it:
                names = [entry.name for entry in it if not entry.name.startswith(".")]
        except OSError as err:
            raise SourceError("source_folder_unreadable", f"cannot list {self._folder}: {err}") from err
        entries = []
        for name in names:
            try:
                info = (self._folder / name).stat()
            except OSError:
                continue  # removed since the listing
            if stat.S_ISREG(info.st_mode):
                entries.append((name, info.st_mtime))
        return entries

    def close(self) -> None:
        self._pending.clear()
