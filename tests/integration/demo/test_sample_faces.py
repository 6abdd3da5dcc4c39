"""Tests of demo.sample_faces: one real download from PyPI per module, shared by the tests."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest

from common.errors import FacegateError
from demo import sample_faces
from demo.sample_faces import SamplePhoto, fetch_samples, samples_dir

EXPECTED = {
    "obama": "Barack Obama",
    "obama2": "Barack Obama",
    "obama3": "Barack Obama",
    "obama_partial_face": "Barack Obama",
    "obama_partial_face2": "Barack Obama",
    "biden": "Joe Biden",
    "astronaut": "Eileen Collins",
    "grace_hopper": "Grace Hopper",
}


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SamplePhoto]:
    """The samples, really downloaded once (about 3 MB) into a module-wide temp dir."""
    return fetch_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records each archive download while still delegating to the real one."""
    calls: list[Path] = []
    real: Callable[[Path], Path] = sample_faces._download_archive

    def counting(dest: Path) -> Path:
        calls.append(dest)
        return real(dest)

    monkeypatch.setattr(sample_faces, "_download_archive", counting)
    return calls


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_samples_fresh_dir_all_photos_present_and_verified(fetched: dict[str, SamplePhoto]) -> None:
    assert {name: photo.person for name, photo in fetched.items()} == EXPECTED
    for spec in sample_faces._SPECS:
        photo = fetched[spec.name]
        assert photo.name == spec.name
        assert photo.path.is_file()
        assert sample_faces._is_valid(spec, photo.path)
        if spec.source != "skimage":
            assert _file_sha256(photo.path) == spec.sha256
    assert not [p for p in next(iter(fetched.values())).path.parent.iterdir() if p.name.startswith(".")]


def test_fetch_samples_second_call_reuses_files_without_download(
    fetched: dict[str, SamplePhoto], downloads: list[Path]
) -> None:
    directory = fetched["obama"].path.parent
    before = {name: photo.path.stat().st_mtime_ns for name, photo in fetched.items()}
    again = fetch_samples(directory)
    assert again == fetched
    assert {name: photo.path.stat().st_mtime_ns for name, photo in again.items()} == before
    assert downloads == []


def test_fetch_samples_truncated_files_detected_and_replaced(
    fetched: dict[str, SamplePhoto], downloads: list[Path]
) -> None:
    directory = fetched["obama"].path.parent
    for name in ("obama", "astronaut", "grace_hopper"):
        with fetched[name].path.open("r+b") as fh:
            fh.truncate(100)
    (directory / "biden.jpg").unlink()
    fetch_samples(directory)
    assert len(downloads) == 1
    for spec in sample_faces._SPECS:
        assert sample_faces._is_valid(spec, directory / spec.file), spec.name


def test_fetch_samples_photos_decode_as_plausible_colour_images(fetched: dict[str, SamplePhoto]) -> None:
    for name, photo in fetched.items():
        image = cv2.imread(str(photo.path), cv2.IMREAD_UNCHANGED)
        assert image is not None, name
        assert image.ndim == 3 and image.shape[2] == 3, (name, image.shape)
        assert min(image.shape[:2]) >= 200 and max(image.shape[:2]) <= 4000, (name, image.shape)


def test_fetch_samples_wrong_archive_raises_facegate_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_download(dest: Path) -> Path:
        archive = dest / sample_faces.ARCHIVE_NAME
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo(sample_faces.ARCHIVE_MEMBER_DIR + "obama.jpg")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"fake"))
        return archive

    monkeypatch.setattr(sample_faces, "_download_archive", fake_download)
    with pytest.raises(FacegateError, match="not the pinned archive"):
        fetch_samples(tmp_path)
    assert not (tmp_path / "obama.jpg").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_download_archive_pip_fails_raises_error_naming_pypi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for broken_python in ("/bin/false", str(tmp_path / "no-such-python")):
        monkeypatch.setattr(sys, "executable", broken_python)
        with pytest.raises(FacegateError, match="check network access to PyPI"):
            sample_faces._download_archive(tmp_path)


def test_fetch_samples_unwritable_dir_raises_facegate_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(FacegateError, match="pass a writable directory"):
        fetch_samples(blocker / "samples")


def test_samples_dir_env_var_set_overrides_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEGATE_SAMPLES", str(tmp_path))
    assert samples_dir() == tmp_path
    assert samples_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_samples_dir_env_var_unset_uses_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEGATE_SAMPLES", raising=False)
    assert samples_dir() == Path.home() / ".cache" / "facegate" / "samples"


def test_main_directory_argument_prints_one_line_per_photo(
    fetched: dict[str, SamplePhoto], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("common.log.setup_logging", lambda level="info": None)  # keep pytest's handlers
    directory = fetched["obama"].path.parent
    assert sample_faces.main([str(directory)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{p.name}\t{p.person}\t{p.path}" for p in fetched.values()]
