"""What an enrollment photo holds: decoded under limits, run through the face pipeline, judged.

`analyse_photo` is plain blocking work (decode, detect, align, gate, embed); the enrollment service runs
it on its worker threads (FACEGATE_ENROLL_WORKERS). It never raises for bad input: an undecodable photo,
no face, several faces or a face the quality gate refuses come back as a `Rejection`.

Which faces count: every face the detector found whose box is at least `BACKGROUND_RATIO` of the
largest face's (shorter box side). Smaller faces are bystanders far behind the subject and are
ignored, so a portrait with a tiny face in the background is still accepted; a lone tiny face is
the largest face, so it counts and the quality gate judges it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from common.errors import ImageError
from common.pipeline.face import Embedding, Face
from common.pipeline.image import ImageLimits, decode_image
from common.pipeline.pipeline import FacePipeline

BACKGROUND_RATIO = 0.25
"""A face smaller than this fraction of the largest face (shorter box side) is background."""


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    message: str
    quality: float | None = None


@dataclass(frozen=True, slots=True)
class AcceptedFace:
    """The one usable face of a photo: its embedding (unit length, float32) and the photo's facts."""

    embedding: Embedding
    model_id: str
    quality: float
    width: int
    height: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def counted_faces(faces: list[Face]) -> list[Face]:
    """The faces that count (see the module doc), largest first."""
    if not faces:
        return []
    sizes = [float(min(f.detection.box[2], f.detection.box[3])) for f in faces]
    largest = max(sizes)
    kept = [(size, f) for size, f in zip(sizes, faces, strict=True) if size >= BACKGROUND_RATIO * largest]
    return [f for _, f in sorted(kept, key=lambda pair: -pair[0])]


def judge(faces: list[Face], width: int, height: int) -> AcceptedFace | Rejection:
    """Accept exactly one counted face that passed the quality gate and was embedded."""
    counted = counted_faces(faces)
    if not counted:
        return Rejection("no_face", "no face was found in the photo; use a photo showing the face clearly")
    if len(counted) > 1:
        return Rejection(
            "multiple_faces",
            f"{len(counted)} faces of similar size were found; use a photo showing only this person",
        )
    face = counted[0]
    if not face.quality.accepted or face.embedding is None:
        reasons = "; ".join(face.quality.reasons) or "the face could not be embedded"
        return Rejection(
            "low_quality", f"the face was refused by the quality gate: {reasons}", face.quality.score
        )
    embedding = np.ascontiguousarray(face.embedding, dtype=np.float32)
    return AcceptedFace(embedding, face.model_id, float(face.quality.score), width, height)


def analyse_photo(pipeline: FacePipeline, data: bytes, limits: ImageLimits) -> AcceptedFace | Rejection:
    """Decode `data` under `limits` and judge its faces (blocking: run it off the event loop)."""
    try:
        frame = decode_image(data, limits)
    except ImageError as err:
        return Rejection("bad_image", f"the file is not a readable image: {err}")
    height, width = frame.shape[:2]
    return judge(pipeline.process(frame), width, height)


def content_type(data: bytes) -> str:
    """The image's media type from its first bytes (the stored object keeps the uploaded bytes)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:2] in {b"BM"}:
        return "image/bmp"
    if data[:4] in {b"II*\x00", b"MM\x00*"}:
        return "image/tiff"
    return "application/octet-stream"
