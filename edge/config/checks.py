"""Checks across fields of a converted device configuration, and the values filled in at load."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import PurePath
from urllib.parse import SplitResult, urlsplit

import msgspec

from common.topics import TopicError, segment
from edge.config.schema import BrokerSettings, Camera, DeviceConfig, SourceKind
from edge.config.secrets import source_problems

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https"})
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".mjpeg"}
)
MIN_DETECT_SIZE = 64


def infer_kind(source: str) -> SourceKind | None:
    """stream for rtsp(s):// and http(s):// URLs, video for a path with a video suffix, folder for a
    path ending in '/' or without a suffix; None when it cannot tell (set `kind:`)."""
    if urlsplit(source).scheme.lower() in STREAM_SCHEMES:
        return "stream"
    if "://" in source:
        return None
    if source.endswith("/") or not PurePath(source).suffix:
        return "folder"
    return "video" if PurePath(source).suffix.lower() in VIDEO_SUFFIXES else None


def _segment(value: str, path: str) -> list[str]:
    try:
        segment(value, f"{path}:")
    except TopicError as err:
        return [str(err)]
    return []


def _url(url: str, schemes: tuple[str, ...]) -> SplitResult | None:
    """The parsed URL when it is scheme://host[:port][/] without credentials, query or fragment."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return None
    clean = not (parts.username or parts.password or parts.query or parts.fragment)
    return parts if parts.scheme in schemes and parts.hostname and port_ok and clean else None


def _broker_problems(broker: BrokerSettings) -> list[str]:
    parts = _url(broker.url, ("mqtt", "mqtts"))
    if parts is None or parts.path not in ("", "/"):
        return ["broker.url: must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (credentials go in username)"]
    problems = []
    tls = [name for name in ("ca_file", "cert_file", "key_file") if getattr(broker, name)]
    if tls and parts.scheme == "mqtt":
        problems.append(f"broker.{tls[0]}: TLS files need an mqtts:// url")
    if bool(broker.cert_file) != bool(broker.key_file):
        problems.append("broker.cert_file, broker.key_file: a client certificate needs both")
    return problems


def _detect_source_problems(camera: Camera, kind: SourceKind | None, path: str) -> list[str]:
    detect_kind = infer_kind(camera.detect_source or "")
    if not camera.detect_source:
        return [f"{path}: must not be empty (leave it out for a camera with one stream)"]
    if kind == "folder" or detect_kind == "folder":
        return [f"{path}: a detection stream needs video or stream sources, not image folders"]
    if detect_kind is None:
        return [f"{path}: cannot tell what it is: give an rtsp(s):// or http(s):// URL or a video file"]
    return []


_LOCAL_HOSTS = ("localhost", "::1")


def _is_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in _LOCAL_HOSTS


def warnings(config: DeviceConfig) -> list[str]:
    """What is valid but unsafe, each naming its field path: today a broker password sent in clear."""
    broker = config.broker
    parts = urlsplit(broker.url)
    has_password = bool(broker.password or broker.password_file or broker.password_env)
    if parts.scheme == "mqtt" and has_password and parts.hostname and not _is_local(parts.hostname):
        return [
            f"broker.url: plain mqtt:// sends the broker password unencrypted to {parts.hostname}; "
            "use mqtts://HOST:8883 (and broker.ca_file for a private CA)"
        ]
    return []


def _camera_problems(camera: Camera, path: str) -> list[str]:
    problems = _segment(camera.id, f"{path}.id")
    kind = infer_kind(camera.source) if camera.kind == "auto" else camera.kind
    if not camera.source:
        problems.append(f"{path}.source: must not be empty")
    elif kind is None:  # a URL is not echoed: it may hold credentials
        shown = (
            f"a {urlsplit(camera.source).scheme}:// URL" if "://" in camera.source else repr(camera.source)
        )
        problems.append(f"{path}.kind: cannot tell the kind of {shown}: set stream, video or folder")
    elif kind in ("video", "folder") and "://" in camera.source:
        problems.append(f"{path}.source: a {kind} source is a local path, not a URL")
    if camera.detect_source is not None:
        problems += _detect_source_problems(camera, kind, f"{path}.detect_source")
    if camera.loop and kind == "stream":
        problems.append(f"{path}.loop: only a video or folder source can loop")
    if camera.roi is not None:
        x, y, w, h = camera.roi
        if w <= 0 or h <= 0 or x + w > 1 or y + h > 1:
            problems.append(f"{path}.roi: [x, y, w, h] must have w, h > 0, x + w <= 1 and y + h <= 1")
    return problems + _detect_size_problems(camera.detect_size, f"{path}.detect_size")


def _detect_size_problems(size: int | None, path: str) -> list[str]:
    if size is not None and 0 < size < MIN_DETECT_SIZE:
        return [f"{path}: must be 0 (the full frame) or at least {MIN_DETECT_SIZE}, got {size}"]
    return []


def _cameras_problems(config: DeviceConfig) -> list[str]:
    problems = [p for i, cam in enumerate(config.cameras) for p in _camera_problems(cam, f"cameras[{i}]")]
    counts = Counter(camera.id for camera in config.cameras)
    problems += [f"cameras: id {cid!r} is used {n} times" for cid, n in counts.items() if n > 1]
    if config.sync_only and config.cameras:
        problems.append("cameras: a sync_only edge has no cameras: remove them or set sync_only: false")
    elif not config.sync_only and not config.cameras:
        problems.append("cameras: at least one camera is needed (or sync_only: true to only sync galleries)")
    return problems + _detect_size_problems(config.camera_defaults.detect_size, "camera_defaults.detect_size")


def _gallery_problems(config: DeviceConfig) -> list[str]:
    ids = config.gallery.ids
    problems = [p for i, gid in enumerate(ids) for p in _segment(gid, f"gallery.ids[{i}]")]
    problems += [f"gallery.ids: {gid!r} is listed {n} times" for gid, n in Counter(ids).items() if n > 1]
    if config.sync_only and not ids:
        problems.append("gallery.ids: a sync_only edge must follow at least one gallery")
    if PurePath(config.gallery.db_path) == PurePath(config.outbox.path):
        problems.append("outbox.path: must not be the same file as gallery.db_path")
    return problems


def problems(config: DeviceConfig) -> list[str]:
    """Every problem across fields; empty when the configuration is consistent."""
    found = _segment(config.site, "site") + _segment(config.edge, "edge") + _broker_problems(config.broker)
    if _url(config.central.url, ("http", "https")) is None:
        found.append("central.url: must be http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]")
    if not config.central.key_id:
        found.append("central.key_id: must not be empty")
    found += source_problems(config) + _cameras_problems(config) + _gallery_problems(config)
    if config.pipeline.match_threshold is not None:
        found.append("pipeline.match_threshold: not used on an edge: set thresholds.match instead")
    return found


def completed(config: DeviceConfig) -> DeviceConfig:
    """The consistent config with derived values filled in: camera kinds, broker client id."""
    cameras = tuple(
        msgspec.structs.replace(camera, kind=infer_kind(camera.source) or camera.kind)
        if camera.kind == "auto"
        else camera
        for camera in config.cameras
    )
    broker = config.broker
    if not broker.client_id:
        broker = msgspec.structs.replace(broker, client_id=f"facegate-{config.site}-{config.edge}")
    return msgspec.structs.replace(config, cameras=cameras, broker=broker)
