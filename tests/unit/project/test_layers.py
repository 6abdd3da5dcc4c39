"""The import contracts of pyproject.toml ([tool.importlinter], run by `make lint`) hold on the tree, and
each one catches the violation it is there for: a copy of the tree gets one bad import and lint-imports
must name the broken contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGES = ("common", "edge", "central", "demo", "bench", "devtools", "tests")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages' Python files and pyproject.toml, copied once for this module."""
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_layers_every_contract_kept_on_the_tree(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


VIOLATIONS = {
    "common-imports-edge": ("common/_violation.py", "import edge.daemon\n", "common imports neither"),
    "edge-imports-central-in-a-function": (
        "edge/_violation.py",
        "def late() -> None:\n    import central.app  # noqa\n",
        "edge and central never import each other",
    ),
    "central-imports-tests": (
        "central/_violation.py",
        "import tests.support.paths\n",
        "product code (common, edge, central) imports no",
    ),
    "bench-imports-tests": (
        "bench/_violation.py",
        "import tests.support.paths\n",
        "demo, bench and devtools",
    ),
    "cycle-through-type-checking": (
        "central/galleries/_violation.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import central.people.service\n",
        "no import cycles",
    ),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_layers_a_violation_breaks_its_contract(tree: Path, case: str) -> None:
    path, code, contract = VIOLATIONS[case]
    target = tree / path
    target.write_text(code)
    try:
        done = _lint(tree)
    finally:
        target.unlink()
    assert done.returncode != 0, done.stdout
    broken = done.stdout[done.stdout.index("Broken contracts") :]
    assert contract in broken, done.stdout
