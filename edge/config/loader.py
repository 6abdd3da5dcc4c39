"""Loading the edge device configuration (one YAML file per box; fields in firmware_config/README.md).

A device file may name a profile (`profile: profiles/cpu-small.yaml`, relative to the device file):
the profile is read first and the device file is merged over it (mappings merged key by key, any
other value, lists included, replaced). `camera_defaults` then fills the fields a camera leaves out.
Problems are reported together, each naming its field path, in one `ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from common.errors import ConfigError
from edge.config.checks import completed, problems, warnings
from edge.config.errors import conversion_problems
from edge.config.schema import (
    BrokerSettings,
    Camera,
    CameraDefaults,
    CentralSettings,
    CropSettings,
    DeviceConfig,
    GallerySettings,
    HealthSettings,
    IndexSettings,
    OutboxSettings,
    Thresholds,
    TrackerSettings,
)
from edge.config.secrets import resolve_secrets

__all__ = [
    "BrokerSettings",
    "Camera",
    "CameraDefaults",
    "CentralSettings",
    "ConfigError",
    "CropSettings",
    "DeviceConfig",
    "GallerySettings",
    "HealthSettings",
    "IndexSettings",
    "OutboxSettings",
    "Thresholds",
    "TrackerSettings",
    "check_files",
    "load_config",
    "load_profile",
    "validate_files",
]

# What a profile is checked against: it is merged over this stand-in device and the result validated.
PROFILE_STAND_IN: dict[str, Any] = {
    "site": "profile-check",
    "edge": "profile-check",
    "broker": {"url": "mqtt://localhost:1883"},
    "central": {"url": "http://localhost:8000", "key_id": "profile-check", "secret": "profile-check"},
    "cameras": [{"id": "profile-check", "source": "rtsp://localhost/profile-check"}],
}
DEVICE_ONLY = ("site", "edge", "profile")


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (the second would silently win)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by later keys
            continue
        key = loader.construct_object(key_node)
        if not isinstance(key, str):  # other keys are refused later, as unknown fields
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {err.problem}"
    return f"invalid YAML: {err}".replace("\n", " ")


def read_document(path: Path) -> dict[str, Any]:
    """The YAML mapping in a file; ConfigError when it cannot be read, parsed, or is not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text") from err
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_problem(err)) from err
    if document is None:
        raise ConfigError("the file is empty")
    if not isinstance(document, dict):
        raise ConfigError(f"the file must hold a mapping of settings, not a {type(document).__name__}")
    return document


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: mappings merged key by key, any other value (lists too) replaced."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = merge(below, value)
        else:
            merged[key] = value
    return merged


def _profile_document(path: Path) -> dict[str, Any]:
    try:
        document = read_document(path)
    except ConfigError as err:
        raise ConfigError(f"profile {path}: {err}") from err
    if given := [key for key in DEVICE_ONLY if key in document]:
        raise ConfigError(f"profile {path}: {', '.join(given)} belong in the device file, not a profile")
    return document


def _with_profile(document: dict[str, Any], base: Path) -> dict[str, Any]:
    name = document.get("profile")
    if not name:
        return document
    if not isinstance(name, str):
        raise ConfigError("profile: must be the path of a profile file")
    return merge(_profile_document(base / name), document)


def _with_camera_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """Each camera mapping completed with `camera_defaults` (when those are valid themselves)."""
    defaults, cameras = document.get("camera_defaults"), document.get("cameras")
    if not isinstance(defaults, dict) or not isinstance(cameras, list):
        return document
    if conversion_problems(defaults, CameraDefaults):
        return document
    filled = [{**defaults, **camera} if isinstance(camera, dict) else camera for camera in cameras]
    return {**document, "cameras": filled}


def build(document: dict[str, Any]) -> DeviceConfig:
    """A checked DeviceConfig from a merged document; ConfigError lists every problem found."""
    document = _with_camera_defaults(document)
    if found := conversion_problems(document, DeviceConfig):
        raise ConfigError("; ".join(found))
    config = msgspec.convert(document, type=DeviceConfig)
    if found := problems(config):
        raise ConfigError("; ".join(found))
    return completed(config)


def load_config(path: Path, *, resolve: bool = True, env: Mapping[str, str] | None = None) -> DeviceConfig:
    """Read, merge with its profile, convert and check a device file; then read its secret files and
    environment variables (`env`, default os.environ) unless `resolve` is False (checking a file away
    from its device). Raises ConfigError naming the field path of every problem."""
    document = _with_profile(read_document(path), path.parent)
    config = build(document)
    return resolve_secrets(config, path.parent, os.environ if env is None else env) if resolve else config


def load_profile(path: Path) -> DeviceConfig:
    """Check a profile: it must not set device-only fields, and merged over a stand-in device (site,
    edge, broker, central, one camera) it must give a valid configuration, which is returned."""
    return build(merge(PROFILE_STAND_IN, _profile_document(path)))


def validate_files(
    paths: Iterable[Path], *, profile: bool = False, resolve: bool = True
) -> list[tuple[Path, str | None]]:
    """(path, None) for each valid file, (path, message) for each invalid one. `profile`: the files
    are profiles (see load_profile); `resolve`: also read secret files and environment variables."""
    return [(path, problem) for path, problem, _ in check_files(paths, profile=profile, resolve=resolve)]


def check_files(
    paths: Iterable[Path], *, profile: bool = False, resolve: bool = True
) -> list[tuple[Path, str | None, list[str]]]:
    """validate_files, plus the warnings (checks.warnings) of each valid device file."""
    results: list[tuple[Path, str | None, list[str]]] = []
    for path in paths:
        try:
            if profile:
                load_profile(path)
                results.append((path, None, []))
            else:
                results.append((path, None, warnings(load_config(path, resolve=resolve))))
        except ConfigError as err:
            results.append((path, str(err), []))
    return results
