"""The backend per model: onnxruntime or OpenCV's DNN, probed once per CPU and model, or configured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.models.manifest import SFACE, YUNET
from common.pipeline.backends import CACHE_FILE, OPENCV, Backend, faster
from common.pipeline.detector import Detector, DetectorSettings
from common.pipeline.embedder import Embedder
from common.pipeline.pipeline import FacePipeline
from common.pipeline.runtime import RuntimeSettings, load_model
from demo.sample_faces import SamplePhoto
from tests.support.faces import read


@pytest.fixture
def local(tmp_path: Path, model_dir: Path) -> Path:
    for manifest in (YUNET, SFACE):
        shutil.copy2(model_dir / manifest.file, tmp_path / manifest.file)
    return tmp_path


def test_faster_keeps_onnxruntime_unless_opencv_wins_by_the_margin() -> None:
    assert faster({"onnxruntime": 10.0, "opencv": 9.8}) == "onnxruntime"
    assert faster({"onnxruntime": 10.0, "opencv": 8.0}) == OPENCV
    assert faster({"onnxruntime": 5.0, "opencv": 20.0}) == "onnxruntime"


def test_load_model_auto_probes_once_then_follows_the_cache(local: Path) -> None:
    load_model(SFACE, local / SFACE.file, RuntimeSettings(warmup=False))
    path = local / ".optimized" / CACHE_FILE
    cache = json.loads(path.read_text())
    ((key, entry),) = cache.items()
    assert key.startswith("sface-2021dec-t0-") and set(entry["ms"]) == {"onnxruntime", "opencv"}
    other = "onnxruntime" if entry["backend"] == OPENCV else OPENCV
    path.write_text(json.dumps({key: {"backend": other}}))  # a cached choice is not probed again
    model = load_model(SFACE, local / SFACE.file, RuntimeSettings(warmup=False))
    assert model.backend.startswith(other)


def test_load_model_corrupt_backend_cache_probes_again(local: Path) -> None:
    (local / ".optimized").mkdir()
    (local / ".optimized" / CACHE_FILE).write_text("{torn")
    load_model(YUNET, local / YUNET.file, RuntimeSettings(warmup=False))
    assert "yunet-2023mar" in next(iter(json.loads((local / ".optimized" / CACHE_FILE).read_text())))


def test_backends_opencv_and_onnxruntime_give_the_same_faces(
    local: Path, ungated: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    frame = read(samples["obama"].path)
    faces = ungated.process(frame, detect_size=0)
    assert len(faces) == 1 and faces[0].crop is not None and faces[0].embedding is not None
    backends: tuple[Backend, ...] = ("opencv", "onnxruntime")
    for backend in backends:
        settings = RuntimeSettings(backend=backend, warmup=False)
        detector = Detector(load_model(YUNET, local / YUNET.file, settings), DetectorSettings())
        embedder = Embedder(load_model(SFACE, local / SFACE.file, settings))
        assert embedder.model.backend.startswith(backend) and detector.model.backend.startswith(backend)
        (found,) = detector.detect(frame, 0)
        assert abs(found.box - faces[0].detection.box).max() < 0.05
        assert float(embedder.embed([faces[0].crop])[0] @ faces[0].embedding) >= 0.999
    assert not (local / ".optimized" / CACHE_FILE).exists()  # a configured backend probes nothing
