"""`facegate bench pipeline IMAGE...`: where the time goes, measured on this box, in one run.

Reports, per pass over the images (median of --repeat passes):
- each stage of our pipeline: decode, detect, align (with quality), embed;
- the bare model time: the model run alone (`session.run` or the OpenCV net) on the inputs the pipeline built;
- the ratio of our pipeline (decoded frame to embeddings) to that bare model time;
- OpenCV's reference pipeline (cv2.FaceDetectorYN + cv2.FaceRecognizerSF, same model files) at the
  same detection resolution, timed side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import cv2
import msgspec
import numpy as np
from numpy.typing import NDArray

from common.cli.options import detect_size
from common.errors import ImageError
from common.models.fetch import models_dir
from common.models.manifest import SFACE, YUNET
from common.pipeline.backends import cpu_model
from common.pipeline.detector import downscale
from common.pipeline.image import Frame, load_image
from common.pipeline.pipeline import FacePipeline, PipelineSettings, Timings
from common.pipeline.quality import QualitySettings


def register(sub: Any) -> None:
    parser = sub.add_parser("pipeline", help="time each pipeline stage against the bare model and OpenCV")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--detect-size", type=detect_size, default=640, help="detection size (0: full frame)")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the images (median reported)")
    parser.add_argument("--models", help="model directory")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    parser.add_argument(
        "--backend",
        choices=["auto", "onnxruntime", "opencv"],
        default="auto",
        help="what runs the models (auto: the faster on this CPU, as the daemon chooses)",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip OpenCV's reference pipeline")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.set_defaults(handler=run)


class OpenCvReference:
    """OpenCV's own YuNet + SFace pipeline on the same model files, at a given detection size."""

    def __init__(self, directory: Path, settings: PipelineSettings) -> None:
        det = settings.detection
        self.detector = cv2.FaceDetectorYN.create(
            str(directory / YUNET.file), "", (320, 320), det.score_threshold, det.nms_threshold, det.top_k
        )
        self.recognizer = cv2.FaceRecognizerSF.create(str(directory / SFACE.file), "")

    def run(self, frame: Frame, detect_size: int) -> int:
        small, scale_x, scale_y = downscale(frame, detect_size)  # the very input our detector sees
        self.detector.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self.detector.detect(small)
        if faces is None:
            return 0
        found: NDArray[np.float32] = np.asarray(faces, dtype=np.float32).copy()
        found[:, :14] /= np.array([scale_x, scale_y] * 7, dtype=np.float32)
        for face in found:
            self.recognizer.feature(self.recognizer.alignCrop(frame, face))
        return len(faces)


def _readable(paths: list[Path], pipeline: FacePipeline) -> list[Path]:
    out = []
    for path in paths:
        try:
            load_image(path, pipeline.settings.images)
        except ImageError as err:
            print(f"skipping {path}: {err}", file=sys.stderr)
            continue
        out.append(path)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    base = PipelineSettings(models_dir=args.models or "")
    settings = msgspec.structs.replace(
        base,
        runtime=msgspec.structs.replace(base.runtime, intra_op_threads=args.threads, backend=args.backend),
        quality=QualitySettings(enabled=False),  # embed every face, as the reference does
    )
    pipeline = FacePipeline.load(settings)
    assert pipeline.embedder is not None
    reference = None if args.no_reference else OpenCvReference(models_dir(args.models), settings)
    inputs = _readable(args.images, pipeline)
    if not inputs:
        raise SystemExit("facegate bench pipeline: no readable image")
    passes: list[dict[str, float]] = []
    faces = 0
    for _ in range(args.repeat + 1):  # the first pass warms up and is dropped
        timings = Timings()
        models = (pipeline.detector.model, pipeline.embedder.model)
        model_before = sum(m.stats.seconds for m in models)
        faces = 0
        for path in inputs:
            timings.start()
            frame = load_image(path, settings.images)
            timings.lap("decode")
            faces += len(pipeline.process(frame, args.detect_size, timings=timings))
            if reference is not None:
                timings.start()
                reference.run(frame, args.detect_size)
                timings.lap("opencv_reference")
        row = dict(timings.seconds)
        row["model"] = sum(m.stats.seconds for m in models) - model_before
        passes.append(row)
    return _summary(passes[1:], len(inputs), faces, args, pipeline)


def _summary(
    passes: list[dict[str, float]], images: int, faces: int, args: argparse.Namespace, pipeline: FacePipeline
) -> dict[str, Any]:
    def med(key: str) -> float:
        return statistics.median(p.get(key, 0.0) for p in passes) * 1000

    ours = statistics.median(p["detect"] + p["align"] + p["embed"] for p in passes) * 1000
    out: dict[str, Any] = {
        "images": images,
        "faces": faces,
        "passes": len(passes),
        "detect_size": args.detect_size,
        "provider": pipeline.detector.model.provider,
        "cpu": cpu_model(),
        "backends": {
            "detector": pipeline.detector.model.backend,
            "recognizer": pipeline.embedder.model.backend if pipeline.embedder else "",
        },
        "ms_per_pass": {k: round(med(k), 2) for k in ("decode", "detect", "align", "embed", "model")},
        "pipeline_ms": round(ours, 2),
        "pipeline_over_model": round(ours / med("model"), 3),
    }
    if not args.no_reference:
        out["opencv_reference_ms"] = round(med("opencv_reference"), 2)
        out["opencv_over_pipeline"] = round(med("opencv_reference") / ours, 3)
    return out


def run(args: argparse.Namespace) -> int:
    figures = measure(args)
    if args.json:
        print(msgspec.json.encode(figures).decode())
        return 0
    stages = figures["ms_per_pass"]
    backends = figures["backends"]
    print(
        f"{figures['images']} images, {figures['faces']} faces, detect size {figures['detect_size']}, "
        f"median of {figures['passes']} passes (ms per pass)\n  CPU {figures['cpu']}; detector on "
        f"{backends['detector']}, recognizer on {backends['recognizer']}:"
    )
    for stage in ("decode", "detect", "align", "embed"):
        print(f"  {stage:8} {stages[stage]:9.2f}")
    print(f"  pipeline (frame -> embeddings) {figures['pipeline_ms']:9.2f}")
    print(f"  bare model (model run only)    {stages['model']:9.2f}")
    print(f"  pipeline / bare model          {figures['pipeline_over_model']:9.3f}")
    if "opencv_reference_ms" in figures:
        print(
            f"  OpenCV reference pipeline      {figures['opencv_reference_ms']:9.2f}"
            f"  ({figures['opencv_over_pipeline']:.2f} x ours)"
        )
    return 0
