"""Central's crop policy over the device file's: central's retention may keep no crops of a site, and
then sends `reload_config` with `crop_policy: "none"` (`"device"` hands the choice back to the device
file's `crops.policy`). The last value received is kept in a small state file beside the outbox, so it
holds across restarts; until central has sent one, the device file decides."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import msgspec

from edge.config.schema import DeviceConfig

log = logging.getLogger("edge.config")
CentralCrops = Literal["none", "device"]


def read(path: Path) -> CentralCrops | None:
    """The value stored by `write`, or None (never received, or unreadable: the device file decides)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        log.warning("central_crops_unreadable", extra={"path": str(path), "error": str(err)})
        return None
    if text == "none":
        return "none"
    return "device" if text == "device" else None


def write(path: Path, value: CentralCrops) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value + "\n", encoding="utf-8")
    tmp.replace(path)


def apply(config: DeviceConfig, value: CentralCrops | None) -> DeviceConfig:
    """`config` with no crops when central says so; unchanged otherwise."""
    if value != "none" or config.crops.policy == "none":
        return config
    return msgspec.structs.replace(config, crops=msgspec.structs.replace(config.crops, policy="none"))
