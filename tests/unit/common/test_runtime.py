"""Session building: the optimised-graph cache, providers, warm-up."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from common.errors import ModelError
from common.models.manifest import SFACE, YUNET
from common.pipeline.runtime import CPU, CUDA, RuntimeSettings, load_model


@pytest.fixture
def local(tmp_path: Path, model_dir: Path) -> Path:
    for manifest in (YUNET, SFACE):
        shutil.copy2(model_dir / manifest.file, tmp_path / manifest.file)
    return tmp_path


def test_load_model_builds_cache_once_then_reuses_it(local: Path) -> None:
    load_model(YUNET, local / YUNET.file, RuntimeSettings())
    cached = list((local / ".optimized").glob("yunet-2023mar-*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    model = load_model(YUNET, local / YUNET.file, RuntimeSettings())
    assert cached[0].stat().st_mtime_ns == stamp
    assert model.provider == CPU


def test_load_model_stale_cache_rebuilt(local: Path) -> None:
    load_model(YUNET, local / YUNET.file, RuntimeSettings())
    (cached,) = (local / ".optimized").glob("yunet-2023mar-*.onnx")
    cached.write_bytes(b"garbage")  # its stat no longer matches the recorded one
    model = load_model(YUNET, local / YUNET.file, RuntimeSettings())
    assert model.session.get_inputs()[0].shape[2:] == ["height", "width"]


def test_load_model_makes_shapes_dynamic_and_strips_weight_inputs(local: Path) -> None:
    model = load_model(SFACE, local / SFACE.file, RuntimeSettings(cache_optimized=False, warmup=False))
    inputs = model.session.get_inputs()
    assert len(inputs) == 1 and inputs[0].shape[0] == "batch"
    detector = load_model(YUNET, local / YUNET.file, RuntimeSettings(cache_optimized=False, warmup=False))
    assert detector.session.get_inputs()[0].shape == ["batch", 3, "height", "width"]


def test_load_model_warmup_runs_each_model_once(local: Path) -> None:
    model = load_model(SFACE, local / SFACE.file, RuntimeSettings(warmup=True))
    assert model.stats.calls == 1
    cold = load_model(SFACE, local / SFACE.file, RuntimeSettings(warmup=False))
    assert cold.stats.calls == 0


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this onnxruntime has the CUDA provider")
def test_load_model_cuda_without_gpu_build_raises_clear_error(local: Path) -> None:
    with pytest.raises(ModelError, match=r"install facegate\[gpu\]"):
        load_model(YUNET, local / YUNET.file, RuntimeSettings(providers="cuda"))


@pytest.mark.skipif(CUDA not in ort.get_available_providers(), reason="needs onnxruntime-gpu and a GPU")
def test_load_model_auto_uses_cuda_when_session_gets_it(local: Path) -> None:
    model = load_model(SFACE, local / SFACE.file, RuntimeSettings(providers="auto"))
    assert model.provider in (CUDA, CPU)
    assert model.provider == model.session.get_providers()[0]


def test_load_model_unwritable_cache_folder_still_loads(local: Path) -> None:
    (local / ".optimized").write_text("a file where the cache folder should be")
    model = load_model(YUNET, local / YUNET.file, RuntimeSettings())
    assert model.session.get_inputs()[0].shape[2:] == ["height", "width"]
