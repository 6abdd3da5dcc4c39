"""Videos composed from real photos, for the demo's cameras and the tests: each photo slides across a
textured backdrop for a second or so, between stretches of empty backdrop (one visit per photo).

This OpenCV (5.0, FFmpeg backend) writes and reads back both mp4v in .mp4 and MJPG in .avi; its H.264
writer needs a hardware encoder, so it is not used. `write_video` picks the codec from the suffix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def write_video(path: Path, frames: Iterable[Image], fps: float) -> Path:
    """Write BGR frames (all the size of the first) to `path` (.mp4: mp4v, .avi: MJPG)."""
    writer: cv2.VideoWriter | None = None
    for frame in frames:
        if writer is None:
            size = (frame.shape[1], frame.shape[0])
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*CODECS[path.suffix]), fps, size)
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {path.suffix} videos here")
        writer.write(frame)
    if writer is None:
        raise ValueError("no frames to write")
    writer.release()
    return path


def background(size: tuple[int, int], seed: int = 0) -> Image:
    """A deterministic textured backdrop (width, height): a colour gradient with soft blobs, no faces."""
    width, height = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    base = (60 + 120 * ramp * np.array([0.4, 0.7, 1.0], np.float32)).repeat(height, axis=0)
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 9)
    out: Image = np.clip(base + noise, 0, 255).astype(np.uint8)
    return out


def load_photo(photo: Path | Image) -> Image:
    if isinstance(photo, Path):
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read {photo}")
        return np.asarray(image, dtype=np.uint8)
    return photo


def visit_spans(count: int, seconds_each: float, fps: float, gap_s: float) -> list[range]:
    """The frame numbers showing each photo: gap, visit, gap, visit, ..., gap."""
    visit, gap = round(seconds_each * fps), round(gap_s * fps)
    return [range(gap + i * (visit + gap), gap + i * (visit + gap) + visit) for i in range(count)]


def visit_frame(backdrop: Image, photo: Image, progress: float) -> Image:
    """The photo over the backdrop, sliding left to right and zooming in by 20 % as progress goes 0 → 1."""
    height, width = backdrop.shape[:2]
    base = min(0.8 * height / photo.shape[0], 0.6 * width / photo.shape[1]) / 1.2
    scale = base * (1.0 + 0.2 * progress)
    pw, ph = round(photo.shape[1] * scale), round(photo.shape[0] * scale)
    margin = width // 20
    x = round(margin + progress * (width - pw - 2 * margin))
    y = (height - ph) // 2
    out = backdrop.copy()
    out[y : y + ph, x : x + pw] = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_AREA)
    return out


def visit_frames(
    photos: Sequence[Path | Image], seconds_each: float, fps: float, size: tuple[int, int], gap_s: float
) -> Iterator[Image]:
    backdrop = background(size)
    spans = visit_spans(len(photos), seconds_each, fps, gap_s)
    loaded = [load_photo(p) for p in photos]
    total = spans[-1].stop + round(gap_s * fps) if spans else round(gap_s * fps)
    for number in range(total):
        shown = [(i, span) for i, span in enumerate(spans) if number in span]
        if not shown:
            yield backdrop
            continue
        i, span = shown[0]
        yield visit_frame(backdrop, loaded[i], (number - span.start) / max(1, len(span) - 1))


def compose_visit_video(
    path: Path,
    photos: Sequence[Path | Image],
    seconds_each: float = 1.0,
    fps: float = 15.0,
    size: tuple[int, int] = (640, 360),
    *,
    gap_s: float = 0.5,
) -> Path:
    """A video showing each photo for `seconds_each`, with `gap_s` of empty backdrop before, between and
    after the visits (frame numbers of each visit: `visit_spans`). Returns `path`."""
    return write_video(path, visit_frames(photos, seconds_each, fps, size, gap_s), fps)
