"""The face pipeline: detect, align, assess quality, embed, as edge and central both run it."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import msgspec

from common.models.fetch import models_dir
from common.models.manifest import DEFAULT_MODELS, Kind, ModelManifest, parse_model_spec
from common.pipeline.align import align_face
from common.pipeline.detector import Detector, DetectorSettings
from common.pipeline.embedder import Embedder
from common.pipeline.face import Detection, Face
from common.pipeline.image import Frame, ImageLimits
from common.pipeline.quality import QualitySettings, assess
from common.pipeline.runtime import CUDA, OnnxModel, RuntimeSettings, load_model

# Published cosine thresholds per recognizer family. SFace: OpenCV Zoo's 0.363. ArcFace weights
# differ, so 0.30 is only a starting point: calibrate it on your own same/different pairs.
DEFAULT_THRESHOLDS = {"sface": 0.363, "arcface": 0.30}


class Timings:
    """Seconds spent per stage, summed over calls (for benchmarks and metrics)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self._last = time.perf_counter()

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Charge the time since the last lap (or start) to `stage`."""
        now = time.perf_counter()
        self.seconds[stage] += now - self._last
        self._last = now


class PipelineSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the pipeline needs; every field is documented in docs/pipeline.md."""

    detector: str = "yunet-2023mar"  # or scrfd:/path/to/model.onnx
    recognizer: str = "sface-2021dec"  # or arcface:/path/to/model.onnx
    models_dir: str = ""  # empty: $FACEGATE_MODELS, else ~/.cache/facegate/models
    match_threshold: float | None = None  # None: the recognizer's published threshold
    runtime: RuntimeSettings = RuntimeSettings()
    detection: DetectorSettings = DetectorSettings()
    quality: QualitySettings = QualitySettings()
    images: ImageLimits = ImageLimits()


def model_path(manifest: ModelManifest, directory: Path) -> Path:
    """Where a manifest's file lives: the models directory for defaults, its own path otherwise."""
    if manifest in DEFAULT_MODELS:
        return directory / manifest.file
    return Path(manifest.file)


def open_model(spec: str, kind: Kind, settings: PipelineSettings) -> OnnxModel:
    """Load the detector or recognizer a setting names."""
    manifest = parse_model_spec(spec, kind)
    return load_model(manifest, model_path(manifest, models_dir(settings.models_dir)), settings.runtime)


class FacePipeline:
    """Detect, align, gate and embed the faces of a frame."""

    def __init__(self, detector: Detector, embedder: Embedder | None, settings: PipelineSettings) -> None:
        self.detector = detector
        self.embedder = embedder
        self.settings = settings

    @classmethod
    def load(cls, settings: PipelineSettings, recognizer: bool = True) -> FacePipeline:
        """Load the models the settings name; `recognizer=False` loads only the detector."""
        detector = Detector(open_model(settings.detector, "detector", settings), settings.detection)
        embedder = Embedder(open_model(settings.recognizer, "recognizer", settings)) if recognizer else None
        return cls(detector, embedder, settings)

    @property
    def threshold(self) -> float:
        """The cosine threshold for same/different decisions."""
        if self.settings.match_threshold is not None:
            return self.settings.match_threshold
        family = self.embedder.model.manifest.family if self.embedder else "sface"
        return DEFAULT_THRESHOLDS[family]

    @property
    def on_gpu(self) -> bool:
        """Whether the detector runs on onnxruntime's CUDA provider."""
        model = self.detector.model
        return model.net is None and model.provider == CUDA

    def detect(self, frame: Frame, detect_size: int | None = None) -> list[Detection]:
        """Faces in the frame, best score first."""
        return self.detector.detect(frame, detect_size)

    def assess(self, frame: Frame, detections: list[Detection]) -> list[Face]:
        """Align each detection on the full-resolution frame and assess its quality (no embedding)."""
        crops = [align_face(frame, d.landmarks) for d in detections]
        quality = self.settings.quality
        return [Face(d, assess(d, c, quality), crop=c) for d, c in zip(detections, crops, strict=True)]

    def embed_many(
        self, groups: list[list[Face]], max_batch: int = 64, select: list[list[bool]] | None = None
    ) -> list[list[Face]]:
        """Embed the faces the gate accepted in every group (one per frame), together in batches of
        up to `max_batch`; the others come back as they are, and so do those `select` says False for."""
        if self.embedder is None:
            return groups
        wanted = [
            (g, i, f.crop)
            for g, faces in enumerate(groups)
            for i, f in enumerate(faces)
            if f.quality.accepted and f.crop is not None and (select is None or select[g][i])
        ]
        out = [list(faces) for faces in groups]
        step = max(1, max_batch)
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            vectors = self.embedder.embed([crop for _, _, crop in chunk])
            for (g, i, _), vector in zip(chunk, vectors, strict=True):
                out[g][i] = replace(groups[g][i], embedding=vector, model_id=self.embedder.model_id)
        return out

    def faces(
        self, frame: Frame, detections: list[Detection], embed: bool = True, timings: Timings | None = None
    ) -> list[Face]:
        """Align and assess each detection; embed those the gate accepts, all in one batch."""
        faces = self.assess(frame, detections)
        if timings is not None:
            timings.lap("align")
        if embed:
            faces = self.embed_many([faces])[0]
        if timings is not None:
            timings.lap("embed")
        return faces

    def process(
        self, frame: Frame, detect_size: int | None = None, embed: bool = True, timings: Timings | None = None
    ) -> list[Face]:
        """Detect, align, gate and embed every face of the frame."""
        if timings is not None:
            timings.start()
        detections = self.detect(frame, detect_size)
        if timings is not None:
            timings.lap("detect")
        return self.faces(frame, detections, embed, timings)
