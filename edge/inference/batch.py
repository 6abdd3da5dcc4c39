"""Frames of several cameras through the models together: one detector run for the frames whose
detector inputs have the same size (YuNet), one embedder run for all their faces.

On a CPU a batch costs about what its frames cost one by one; on a GPU one run of eight frames costs
little more than one run of one, which is what the CUDA provider needs to be busy. Each request is a
region of a frame (the whole frame, or where motion was); faces come back in the frame's pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.pipeline.face import Detection, Face
from common.pipeline.image import Frame
from common.pipeline.pipeline import FacePipeline, Timings
from edge.camera.motion import Box
from edge.config.schema import BatchSettings


@dataclass(frozen=True, slots=True)
class DetectRequest:
    """Detect in `region` ([x, y, w, h] in image pixels) of `image`, at `detect_size`; align and crop on
    `crop_image` (the same view from the camera's main stream, at its resolution) when given; embed only
    the faces `select` (given them in the crop image's pixels) says True for, when given."""

    image: Frame
    region: Box
    detect_size: int | None
    crop_image: Frame | None = None
    select: Callable[[list[Face]], list[bool]] | None = None


def shifted(detection: Detection, dx: float, dy: float) -> Detection:
    """A detection made on a region of the image, in the whole image's pixels."""
    box = detection.box.copy()
    box[:2] += np.array([dx, dy], dtype=np.float32)
    landmarks = detection.landmarks + np.array([dx, dy], dtype=np.float32)
    return Detection(box, landmarks.astype(np.float32), detection.score)


def scaled(detection: Detection, sx: float, sy: float) -> Detection:
    """A detection made on one stream's frame, in the pixels of a frame `sx` by `sy` times its size."""
    factor = np.array([sx, sy], dtype=np.float32)
    box = detection.box.astype(np.float32).copy()
    box[:2] *= factor
    box[2:] *= factor
    landmarks = (detection.landmarks * factor).astype(np.float32)
    return Detection(box, landmarks, detection.score)


def to_crop_stream(detections: list[Detection], image: Frame, crop_image: Frame) -> list[Detection]:
    """Detections on the detection stream's image, in the pixels of the main stream's image of the same
    view (the streams differ in resolution only, not in what they show)."""
    sx = crop_image.shape[1] / image.shape[1]
    sy = crop_image.shape[0] / image.shape[0]
    return [scaled(d, sx, sy) for d in detections]


def _region(request: DetectRequest) -> Frame:
    x, y, w, h = request.region
    height, width = request.image.shape[:2]
    if (x, y, w, h) == (0, 0, width, height):
        return request.image
    return np.ascontiguousarray(request.image[y : y + h, x : x + w])


def region_size(request: DetectRequest, default: int) -> int:
    """The detector input side for a request's region: the region at the scale the whole frame would be
    detected at (its longer side brought to `detect_size`, never enlarged), so a region costs its share
    of the frame's detection and finds the same faces there, no smaller ones at a higher cost."""
    size = default if request.detect_size is None else request.detect_size
    height, width = request.image.shape[:2]
    if size == 0 or size >= max(height, width):
        return size
    longer = max(request.region[2], request.region[3])
    return max(1, round(longer * size / max(int(height), int(width))))


def detect_and_embed(
    pipeline: FacePipeline, requests: list[DetectRequest], settings: BatchSettings, timings: Timings
) -> list[list[Face]]:
    """The faces of each request: detected together, aligned on each image, embedded together."""
    timings.start()
    default = pipeline.detector.settings.detect_size
    found = pipeline.detector.detect_many(
        [(_region(r), region_size(r, default)) for r in requests], settings.max_frames
    )
    timings.lap("detect")
    assessed = []
    for request, detections in zip(requests, found, strict=True):
        x, y = request.region[:2]
        moved = [shifted(d, x, y) for d in detections] if (x, y) != (0, 0) else detections
        if request.crop_image is None:
            assessed.append(pipeline.assess(request.image, moved))
        else:
            crop_image = request.crop_image
            assessed.append(pipeline.assess(crop_image, to_crop_stream(moved, request.image, crop_image)))
    timings.lap("align")
    select = [
        r.select(faces) if r.select is not None else [True] * len(faces)
        for r, faces in zip(requests, assessed, strict=True)
    ]
    faces = pipeline.embed_many(assessed, settings.max_faces, select)
    timings.lap("embed")
    return faces
