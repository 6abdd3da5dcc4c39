"""Packaging rules: one console script, and onnxruntime only through exactly one extra."""

from __future__ import annotations

import tomllib

from tests.support.paths import REPO

ROOT = REPO


def _project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project: dict[str, object] = data["project"]
    return project


def _names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {str(r).split(">")[0].split("[")[0].split("=")[0].strip().lower() for r in requirements}


def test_pyproject_onnxruntime_never_a_base_dependency() -> None:
    base = _names(_project()["dependencies"])
    assert "onnxruntime" not in base and "onnxruntime-gpu" not in base


def test_pyproject_extras_add_one_runtime_each() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert _names(extras["cpu"]) == {"onnxruntime"}
    assert _names(extras["gpu"]) == {"onnxruntime-gpu"}
    assert not _names(extras["test"]) & {"onnxruntime", "onnxruntime-gpu"}


def test_pyproject_every_dependency_lower_bounded() -> None:
    project = _project()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict) and isinstance(project["dependencies"], list)
    for requirement in [*project["dependencies"], *[r for group in extras.values() for r in group]]:
        assert ">=" in requirement, requirement


def test_pyproject_one_console_script_and_three_packages() -> None:
    assert _project()["scripts"] == {"facegate": "common.cli:main"}
    for package in ("common", "edge", "central"):
        assert (ROOT / package / "__init__.py").is_file()
