"""`facegate detect | embed | verify`: the face pipeline on image files.

With --json, stdout carries one JSON object per input image and nothing else; logs go to stderr.
An unreadable image gives {"image": PATH, "error": MESSAGE}; the others still give their results.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from common.cli.options import detect_size
from common.errors import ImageError
from common.pipeline.face import Face
from common.pipeline.image import Frame, ImageLimits, load_image
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from common.pipeline.quality import QualitySettings
from common.pipeline.runtime import RuntimeSettings

EXIT_OK, EXIT_NO_FACE, EXIT_BAD_INPUT = 0, 1, 2
_encoder = msgspec.json.Encoder()


def register(sub: Any) -> None:
    detect = sub.add_parser("detect", help="find faces: box, score, landmarks, quality")
    embed = sub.add_parser("embed", help="detect and embed faces (L2-normalised)")
    verify = sub.add_parser("verify", help="compare the largest face of two images")
    for parser in (detect, embed):
        parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    verify.add_argument("images", nargs=2, type=Path, metavar="IMAGE")
    verify.add_argument(
        "--threshold", type=float, help="cosine threshold (default: the model's, SFace 0.363)"
    )
    for parser in (detect, embed, verify):
        _common_options(parser)
    detect.set_defaults(handler=run_detect)
    embed.set_defaults(handler=run_embed)
    verify.set_defaults(handler=run_verify)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout")
    parser.add_argument(
        "--detect-size",
        type=detect_size,
        metavar="N",
        help="maximum detection input side in px (default 640; 0: the full frame)",
    )
    parser.add_argument(
        "--models", help="model directory (default: $FACEGATE_MODELS or ~/.cache/facegate/models)"
    )
    parser.add_argument("--detector", default="yunet-2023mar", help="yunet-2023mar or scrfd:PATH")
    parser.add_argument("--recognizer", default="sface-2021dec", help="sface-2021dec or arcface:PATH")
    parser.add_argument("--providers", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    parser.add_argument(
        "--no-quality-gate", action="store_true", help="embed every face, whatever its quality"
    )


def settings_from(args: argparse.Namespace) -> PipelineSettings:
    """Pipeline settings from the command-line options; one-shot commands skip the warm-up run."""
    base = PipelineSettings()
    detection = base.detection
    if args.detect_size is not None:
        detection = msgspec.structs.replace(detection, detect_size=args.detect_size)
    return msgspec.structs.replace(
        base,
        detector=args.detector,
        recognizer=args.recognizer,
        models_dir=args.models or "",
        match_threshold=getattr(args, "threshold", None),
        runtime=RuntimeSettings(providers=args.providers, intra_op_threads=args.threads, warmup=False),
        detection=detection,
        quality=QualitySettings(enabled=not args.no_quality_gate),
    )


def face_json(face: Face, with_embedding: bool) -> dict[str, Any]:
    """The JSON form of a face (see docs/cli.md)."""
    q = face.quality
    out: dict[str, Any] = {
        "bbox": [round(float(v), 2) for v in face.detection.box],
        "score": round(face.detection.score, 5),
        "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.detection.landmarks],
        "quality": {
            "score": round(q.score, 4),
            "size_px": round(q.size_px, 1),
            "sharpness": round(q.sharpness, 1),
            "yaw": round(q.yaw, 3),
            "pitch": round(q.pitch, 3),
            "roll": round(q.roll, 2),
            "accepted": q.accepted,
            "reasons": list(q.reasons),
        },
    }
    if with_embedding:
        out["embedding"] = face.embedding.tolist() if face.embedding is not None else None
    return out


def _results(
    pipeline: FacePipeline, args: argparse.Namespace, embed: bool
) -> Iterator[tuple[Path, list[Face] | str]]:
    """Each image's faces, or its error; the next images are decoded while this one is in the models."""
    for path, frame in read_ahead(args.images, pipeline.settings.images):
        yield path, frame if isinstance(frame, str) else pipeline.process(frame, embed=embed)


def read_ahead(paths: list[Path], limits: ImageLimits, depth: int = 2) -> Iterator[tuple[Path, Frame | str]]:
    """Decode images in a background thread, at most `depth` ahead of the consumer, in order.

    JPEG decoding releases the GIL, so on a multi-core box it overlaps with inference.
    """

    def load(path: Path) -> Frame | str:
        try:
            return load_image(path, limits)
        except ImageError as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending: deque[tuple[Path, Future[Frame | str]]] = deque()
        for path in paths:
            pending.append((path, pool.submit(load, path)))
            if len(pending) > depth:
                done_path, future = pending.popleft()
                yield done_path, future.result()
        while pending:
            done_path, future = pending.popleft()
            yield done_path, future.result()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(_encoder.encode(obj) + b"\n")


def _run_images(args: argparse.Namespace, embed: bool) -> int:
    pipeline = FacePipeline.load(settings_from(args), recognizer=embed)
    model = pipeline.embedder.model_id if pipeline.embedder else pipeline.detector.model.manifest.id
    status = EXIT_OK
    for path, result in _results(pipeline, args, embed):
        if isinstance(result, str):
            status = EXIT_BAD_INPUT
            if args.json:
                _emit({"image": str(path), "error": result})
            else:
                print(f"{path}: error: {result}", file=sys.stderr)
            continue
        if args.json:
            _emit({"image": str(path), "model": model, "faces": [face_json(f, embed) for f in result]})
        else:
            _print_human(path, result)
    sys.stdout.flush()
    return status


def _print_human(path: Path, faces: list[Face]) -> None:
    print(f"{path}: {len(faces)} face(s)")
    for i, face in enumerate(faces):
        x, y, w, h = (round(float(v)) for v in face.detection.box)
        verdict = "accepted" if face.quality.accepted else "refused: " + "; ".join(face.quality.reasons)
        embedded = f", embedding {face.embedding.shape[0]}-d" if face.embedding is not None else ""
        print(
            f"  #{i} box=({x},{y},{w},{h}) score={face.detection.score:.3f} "
            f"quality={face.quality.score:.2f} {verdict}{embedded}"
        )


def run_detect(args: argparse.Namespace) -> int:
    return _run_images(args, embed=False)


def run_embed(args: argparse.Namespace) -> int:
    return _run_images(args, embed=True)


def run_verify(args: argparse.Namespace) -> int:
    pipeline = FacePipeline.load(settings_from(args))
    picked: list[Face] = []
    for path, result in _results(pipeline, args, embed=True):
        if isinstance(result, str):
            return _verify_error(args, EXIT_BAD_INPUT, f"{path}: {result}")
        if not result:
            return _verify_error(args, EXIT_NO_FACE, f"{path}: no face found")
        largest = max(result, key=lambda f: f.detection.area)
        if largest.embedding is None:
            reasons = "; ".join(largest.quality.reasons)
            return _verify_error(args, EXIT_NO_FACE, f"{path}: the largest face was refused ({reasons})")
        picked.append(largest)
    a, b = picked[0].embedding, picked[1].embedding
    assert a is not None and b is not None
    similarity = float(a @ b)
    out = {
        "image_a": str(args.images[0]),
        "image_b": str(args.images[1]),
        "model": picked[0].model_id,
        "similarity": round(similarity, 5),
        "threshold": pipeline.threshold,
        "same": similarity >= pipeline.threshold,
    }
    if args.json:
        _emit(out)
    else:
        verdict = "same person" if out["same"] else "different people"
        print(f"similarity {similarity:.4f} (threshold {pipeline.threshold}): {verdict}")
    return EXIT_OK


def _verify_error(args: argparse.Namespace, status: int, message: str) -> int:
    if args.json:
        _emit({"image_a": str(args.images[0]), "image_b": str(args.images[1]), "error": message})
    else:
        print(f"facegate verify: {message}", file=sys.stderr)
    return status
