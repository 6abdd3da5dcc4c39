"""Where a Debian package put a program: on PATH, else in the sbin folders a non-root PATH may lack."""

from __future__ import annotations

import shutil

import pytest

SBIN = "/usr/sbin:/usr/local/sbin:/sbin"


def system_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def require_binary(name: str, package: str) -> str:
    """The program's path; skips the calling test, naming the package, when it is not installed."""
    path = system_binary(name)
    if path is None:
        pytest.skip(f"{name} is not installed: run scripts/ensure-services.sh (Debian package {package})")
    return path
