"""install.sh run for real into a temporary folder, in the background (system/images/test_docker_images.py).

The install compiles hnswlib, about a minute on two cores, so the test module starts it first and
runs its other tests meanwhile.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO

ROOT = REPO
SCRIPTS = ROOT / "scripts" / "docker"


@dataclass
class Install:
    """install.sh running into `base/venv`, its dependencies taken from the test environment."""

    base: Path
    process: subprocess.Popen[bytes]

    @property
    def venv(self) -> Path:
        return self.base / "venv"

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.base / "deps"), "HOME": str(self.base / "home")}

    @property
    def log(self) -> str:
        return (self.base / "install.log").read_text(errors="replace")

    def wait(self) -> Install:
        self.process.wait(timeout=600)
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


# Left out of the dependency folder: what the install must build itself (hnswlib, facegate), and the
# packaging tools the new environment has its own of.
NOT_SHARED = re.compile(
    r"^(hnswlib|facegate|_?_?editable|pip|setuptools|wheel|pkg_resources|_distutils_hack)|\.pth$"
)


def start_install(base: Path) -> Install:
    """Run install.sh SRC cpu for real into base/venv.

    SRC holds what the Dockerfiles copy to /src. The dependencies that wheels provide (onnxruntime,
    OpenCV, numpy, ...) are taken from this test environment through PYTHONPATH, so pip finds them
    satisfied; hnswlib is left out of it, so it is compiled from source as in the image build, and
    Facegate is built and installed from SRC.
    """
    src = base / "src"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = name.rstrip("*.")
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    deps = base / "deps"
    deps.mkdir()
    site = Path(sysconfig.get_path("purelib"))
    for entry in site.iterdir():
        if not NOT_SHARED.search(entry.name) and entry.name != "__pycache__":
            (deps / entry.name).symlink_to(entry)
    (base / "home").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(deps),
        "HOME": str(base / "home"),
        "FACEGATE_VENV": str(base / "venv"),
        "PYTHON": sys.executable,
        "PIP_VERBOSE": "1",  # the compiler command lines, for the tests' -march check
    }
    env.pop("XDG_CACHE_HOME", None)
    with (base / "install.log").open("wb") as log:
        process = subprocess.Popen(
            [str(SCRIPTS / "install.sh"), str(src), "cpu"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    install = Install(base, process)
    return install
