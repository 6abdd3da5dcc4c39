"""Fixtures of the fleet-rollout tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ansible_rig
from tests.support.once import once_per_run


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The releases' wheelhouse (good release and canary), built once per run for every worker."""
    return once_per_run(tmp_path_factory, "fleet-wheelhouse", ansible_rig.build_wheelhouse)
