"""Central's crop policy over the device file's (edge/config/central_crops.py): kept in a state file,
"none" turns crops off whatever the device file says, "device" (or nothing received) leaves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import central_crops
from edge.config.loader import load_config

EXAMPLE = Path(__file__).parents[3] / "firmware_config" / "examples" / "branch-cpu.yaml"


def test_central_crops_none_overrides_the_device_file_and_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEGATE_BROKER_PASSWORD", "x")
    monkeypatch.setenv("FACEGATE_CENTRAL_SECRET", "y")
    config = load_config(EXAMPLE)
    assert config.crops.policy != "none"
    state = tmp_path / "central-crops"
    assert central_crops.read(state) is None
    assert central_crops.apply(config, central_crops.read(state)) == config  # until central says
    central_crops.write(state, "none")
    assert central_crops.read(state) == "none"  # what a restarted daemon reads
    assert central_crops.apply(config, "none").crops.policy == "none"
    central_crops.write(state, "device")
    assert central_crops.apply(config, central_crops.read(state)) == config
    state.write_text("garbage\n")
    assert central_crops.read(state) is None
