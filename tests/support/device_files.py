"""Device documents and files for the edge configuration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from common.errors import ConfigError
from edge.config.loader import load_config


def minimal() -> dict[str, Any]:
    """A small valid device document (inline secret, so loading needs no files or variables)."""
    return {
        "site": "hq",
        "edge": "lobby-1",
        "broker": {"url": "mqtts://broker.example.com:8883", "username": "hq.lobby-1", "password": "pw"},
        "central": {"url": "https://central.example.com", "key_id": "edge-1", "secret": "s3cret"},
        "cameras": [{"id": "door", "source": "rtsp://10.0.0.5/stream1"}],
    }


def write(tmp_path: Path, document: dict[str, Any], name: str = "device.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def problem(tmp_path: Path, document: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, document), **kwargs)
    return str(info.value)
