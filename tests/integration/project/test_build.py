"""The package builds from a clean copy without a warning from our own pyproject.toml (pip and setuptools
fetched from the package registry, as on a fresh machine), and the wheel carries the command registry."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.paths import REPO

SHIPPED = ("common", "edge", "central", "demo")


def test_build_wheel_prints_no_deprecation_and_registers_the_commands(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for package in SHIPPED:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist")]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "deprecat" not in output.lower(), output
    (wheel,) = (tmp_path / "dist").glob("facegate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = archive.read(points).decode()
        names = archive.namelist()
    assert "[facegate.commands]" in text and "[facegate.bench]" in text
    assert "central = central.cli:register" in text
    assert not [n for n in names if n.startswith(("tests/", "bench/", "devtools/"))]
