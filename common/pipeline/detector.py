"""Detector front end shared by every detector family: resize, pad, run, decode, NMS, map back.

Detection runs at a maximum input side (`detect_size`, default 640; 0 means the full frame),
downscaled with area interpolation and padded bottom-right to a multiple of 32. Boxes and
landmarks are mapped back to the full frame, so alignment can use full-resolution pixels.

Several frames whose input tensors have the same size go through YuNet in one run
(`detect_many`): its outputs hold the frames one after another (in onnxruntime and in OpenCV's
DNN alike). SCRFD exports differ in how they shape their outputs, so they take one frame per run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import cv2
import msgspec
import numpy as np
from numpy.typing import NDArray

from common.pipeline.candidates import Candidates
from common.pipeline.face import Detection
from common.pipeline.image import Frame
from common.pipeline.runtime import OnnxModel
from common.pipeline.scrfd import decode_scrfd
from common.pipeline.yunet import decode_yunet

Decoder = Callable[[list[NDArray[np.float32]], tuple[str, ...], int, int, float], Candidates]
DECODERS: dict[str, Decoder] = {"yunet": decode_yunet, "scrfd": decode_scrfd}
PAD = 32
BATCHED = frozenset({"yunet"})  # families whose outputs are split per frame when run on a batch


class DetectorSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Detection settings; every field is documented in docs/pipeline.md."""

    detect_size: int = 640  # maximum input side in pixels; 0: the full frame
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    top_k: int = 5000


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame turned into the detector's input tensor, with the scale back to the frame."""

    tensor: NDArray[np.float32]
    scale_x: float
    scale_y: float


def downscale(frame: Frame, max_side: int) -> tuple[Frame, float, float]:
    """The frame shrunk by an area (box) filter so its longer side is at most `max_side` (0: as is),
    with the x and y scale from the frame to the result.

    OpenCV's INTER_AREA is fast for a ratio of exactly 2 and several times slower for other
    ratios, so the shrink is done in steps that all run on that fast path:
    1. while the frame is at least twice the target, average exact 2 x 2 blocks (an odd last row
       or column is dropped: no face fits into one pixel);
    2. the remaining ratio r in [1, 2) resamples linearly to twice the target size (an
       enlargement, so nothing aliases), then averages exact 2 x 2 blocks.
    On the labelled dev pairs this decides exactly as a one-step INTER_AREA does, with the same
    margin between same and different people (docs/pipeline.md), at a fraction of the cost.
    """
    height, width = frame.shape[:2]
    if max_side <= 0 or max(height, width) <= max_side:
        return frame, 1.0, 1.0
    block = 1  # frame pixels per pixel of the current image, along each axis
    while max(height, width) >= 2 * max_side:
        height, width = height // 2, width // 2
        frame = _area(frame[: 2 * height, : 2 * width], width, height)
        block *= 2
    scale = max_side / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_w, new_h) != (width, height):
        double = cv2.resize(frame, (2 * new_w, 2 * new_h), interpolation=cv2.INTER_LINEAR)
        frame = _area(double, new_w, new_h)
    # the result covers the frame's first width * block columns and height * block rows
    return frame, new_w / (width * block), new_h / (height * block)


def _area(frame: NDArray[Any], width: int, height: int) -> Frame:
    return cast(Frame, cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))


class Detector:
    """Runs one detector model (YuNet or SCRFD) over frames."""

    def __init__(self, model: OnnxModel, settings: DetectorSettings) -> None:
        self.model = model
        self.settings = settings
        self._decode = DECODERS[model.manifest.family]

    def prepare(self, frame: Frame, detect_size: int | None = None) -> Prepared:
        """Downscale (area), pad bottom-right to a multiple of 32 and build the NCHW float tensor."""
        size = self.settings.detect_size if detect_size is None else detect_size
        small, scale_x, scale_y = downscale(frame, size)
        new_h, new_w = small.shape[:2]
        pad_w, pad_h = -(-new_w // PAD) * PAD, -(-new_h // PAD) * PAD
        manifest = self.model.manifest
        # padding is black, as the detector saw it in training: 0 before normalisation
        tensor = np.full((1, 3, pad_h, pad_w), -manifest.mean / manifest.std, dtype=np.float32)
        order = (2, 1, 0) if manifest.color_order == "RGB" else (0, 1, 2)
        for dst, channel in zip(order, cv2.split(small), strict=True):
            view = tensor[0, dst, :new_h, :new_w]
            view[...] = channel
            if manifest.mean or manifest.std != 1.0:
                view -= manifest.mean
                view /= manifest.std
        return Prepared(tensor=tensor, scale_x=scale_x, scale_y=scale_y)

    def decode(self, outputs: list[NDArray[np.float32]], prepared: Prepared) -> list[Detection]:
        """Decode raw outputs, apply the score threshold and NMS, map back to frame pixels."""
        _, _, pad_h, pad_w = prepared.tensor.shape
        boxes, scores, kps = self._decode(
            outputs, self.model.output_names, pad_w, pad_h, self.settings.score_threshold
        )
        if len(scores) == 0:
            return []
        keep = cv2.dnn.NMSBoxes(
            boxes.tolist(),
            scores.tolist(),
            self.settings.score_threshold,
            self.settings.nms_threshold,
            top_k=self.settings.top_k,
        )
        scale = np.array([prepared.scale_x, prepared.scale_y], dtype=np.float32)
        out = []
        for i in np.asarray(keep, dtype=np.int64).reshape(-1):
            box = boxes[i].copy()
            box[:2] /= scale
            box[2:] /= scale
            out.append(Detection(box=box, landmarks=kps[i] / scale, score=float(scores[i])))
        return out

    def detect(self, frame: Frame, detect_size: int | None = None) -> list[Detection]:
        """Faces in the frame, best score first."""
        prepared = self.prepare(frame, detect_size)
        return self.decode(self.model.run(prepared.tensor), prepared)

    @property
    def batches(self) -> bool:
        """Whether several frames of one size can go through the model in one run."""
        return self.model.manifest.family in BATCHED

    def detect_many(
        self, frames: Sequence[tuple[Frame, int | None]], max_batch: int = 8
    ) -> list[list[Detection]]:
        """Faces of each (frame, detect size), as `detect` finds them; frames whose tensors have the same
        size run through the model together, up to `max_batch` at a time."""
        prepared = [self.prepare(frame, size) for frame, size in frames]
        found: list[list[Detection]] = [[] for _ in prepared]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(prepared):
            by_shape.setdefault(p.tensor.shape, []).append(i)
        step = max(1, max_batch) if self.batches else 1
        for group in by_shape.values():
            for start in range(0, len(group), step):
                chunk = group[start : start + step]
                if len(chunk) == 1:
                    per_frame = [self.model.run(prepared[chunk[0]].tensor)]
                else:
                    outputs = self.model.run(np.concatenate([prepared[i].tensor for i in chunk]))
                    per_frame = split_outputs(outputs, len(chunk))
                for i, out in zip(chunk, per_frame, strict=True):
                    found[i] = self.decode(out, prepared[i])
        return found


def split_outputs(outputs: list[NDArray[np.float32]], frames: int) -> list[list[NDArray[np.float32]]]:
    """A batched YuNet run's outputs, per frame: each output is [1, frames x cells, channels]."""
    shaped = [o.reshape(frames, -1, o.shape[-1]) for o in outputs]
    return [[o[k : k + 1] for o in shaped] for k in range(frames)]
