"""The edge device configuration: one YAML file per edge box, every field documented with its default
in firmware_config/README.md. Load it with `edge.config.loader.load_config`; these Structs only describe it.
Every section is frozen and forbids unknown fields: a misspelt field is an error, never ignored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec

from common.pipeline.pipeline import PipelineSettings

Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Cosine = Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)]
Seconds = Annotated[float, msgspec.Meta(gt=0.0)]
Count = Annotated[int, msgspec.Meta(ge=1)]
FpsCap = Annotated[float, msgspec.Meta(ge=0.1)]
DetectSize = Annotated[int, msgspec.Meta(ge=0)]
SourceKind = Literal["auto", "stream", "video", "folder"]
MASK = "***"


def masked_fields(section: msgspec.Struct, secret: str) -> Iterator[tuple[str, Any]]:
    """(name, value) of every field, the secret's value replaced by a mask when it is set."""
    for name in section.__struct_fields__:
        value = getattr(section, name)
        yield name, MASK if name == secret and value else value


def masked_repr(section: msgspec.Struct, secret: str) -> str:
    """The Struct's repr with the secret hidden, so a logged or printed config never shows it."""
    parts = ", ".join(f"{name}={value!r}" for name, value in masked_fields(section, secret))
    return f"{type(section).__name__}({parts})"


class BrokerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The MQTT broker. The password comes from exactly one of password, password_file, password_env."""

    url: str  # mqtt://host[:1883] or mqtts://host[:8883]
    username: str = ""  # empty: no username/password login (e.g. TLS client certificates)
    password: str = ""
    password_file: str = ""  # relative paths are relative to the device file's directory
    password_env: str = ""
    ca_file: str = ""  # mqtts only; empty: the system's CA certificates
    cert_file: str = ""  # client certificate (mqtts only), together with key_file
    key_file: str = ""
    keepalive: Annotated[int, msgspec.Meta(ge=5, le=65535)] = 60
    client_id: str = ""  # empty: facegate-{site}-{edge}, filled in at load

    def __repr__(self) -> str:
        return masked_repr(self, "password")

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return list(masked_fields(self, "password"))


class CentralSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Central's API (gallery snapshots) and this edge's API credential."""

    url: str  # http(s)://host[:port], without /api/v1
    key_id: str
    secret: str = ""
    secret_file: str = ""
    secret_env: str = ""

    def __repr__(self) -> str:
        return masked_repr(self, "secret")

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return list(masked_fields(self, "secret"))


class MotionSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Motion gating (edge/camera/motion.py): the detector runs only on frames where something moved, or while
    a track is alive. `motion: off` (or false) on a camera keeps every frame going through the detector."""

    enabled: bool = True
    width: Annotated[int, msgspec.Meta(ge=32, le=640)] = 160  # width of the grey copy compared, in pixels
    threshold: Annotated[int, msgspec.Meta(ge=1, le=255)] = 25  # grey-level change that counts
    min_area: Fraction = 0.002  # smallest changed region, as a share of the frame (smaller ones are noise)
    padding: Fraction = 0.15  # the moved region grows by this share of its size on every side
    min_region: Fraction = 0.3  # ... and to at least this share of the frame's shorter side
    widespread: Fraction = 0.5  # a region covering more than this share of the frame: detect on all of it
    lighting: Fraction = 0.6  # more changed at once: a lighting change, re-learn, no detection
    alpha: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.05  # how fast the background learns each frame


MotionOption = MotionSettings | bool  # `motion: off` in YAML is false


def motion_settings(option: MotionOption) -> MotionSettings:
    """The settings a camera's `motion` field stands for (true: the defaults; false: off)."""
    if isinstance(option, MotionSettings):
        return option
    return MotionSettings(enabled=option)


class CameraDefaults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Values for every camera that does not set them (a profile's way to tune cameras it cannot list)."""

    fps_cap: FpsCap = 5.0
    detect_size: DetectSize | None = None
    motion: MotionOption = True


class Camera(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One video source. `kind: auto` is resolved at load, so a loaded camera never says auto."""

    id: str
    source: str  # rtsp(s)://, http(s):// (stream), a video file, or a directory of images
    # a low-resolution stream of the same camera for motion and detection; `source` then gives the crops
    detect_source: str | None = None
    kind: SourceKind = "auto"
    loop: bool = False  # video and folder: start again at the end
    realtime: bool = True  # video: read at the file's own fps, like a camera; False: as fast as possible
    fps_cap: FpsCap = 5.0  # frames processed per second at most
    detect_size: DetectSize | None = None  # None: pipeline.detection.detect_size; 0: the full frame
    roi: tuple[Fraction, Fraction, Fraction, Fraction] | None = None  # [x, y, w, h], fractions of the frame
    enabled: bool = True
    motion: MotionOption = True  # true: gating with the defaults; off/false: every frame; or MotionSettings


class Thresholds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a track is announced as a person."""

    match: Cosine | None = None  # None: the recognizer's published threshold (SFace 0.363)
    margin: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.05  # best person minus second best
    # veto P when max cos(face, P's negatives) >= P's score - negative_margin (edge/gallery/matcher.py)
    negative_margin: Annotated[float, msgspec.Meta(ge=-1.0, le=2.0)] = 0.05
    min_quality: Fraction = 0.3  # best face quality a track needs to produce an event


class TrackerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Linking detections across frames into tracks."""

    min_frames: Count = 3
    min_score: Fraction = 0.7  # detection score needed to start a track (weaker ones may extend one)
    iou_threshold: Fraction = 0.3
    embedding_similarity: Cosine = 0.5
    timeout_s: Seconds = 2.0
    max_embeddings: Count = 5
    vote: Literal["score_sum", "majority"] = "score_sum"
    # a confirmed track's face is embedded again only after this long (0: embed every face)
    reembed_s: Annotated[float, msgspec.Meta(ge=0.0, le=60.0)] = 1.0


class IndexSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """hnswlib parameters of the gallery index."""

    m: Annotated[int, msgspec.Meta(ge=2, le=100)] = 16  # hnswlib's M
    ef_construction: Count = 200
    ef_search: Count = 128


class GallerySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The galleries this edge follows and its local cache of them."""

    ids: tuple[str, ...] = ()
    db_path: str = "/var/lib/facegate/gallery.db"
    index: IndexSettings = IndexSettings()
    exact_below: Annotated[int, msgspec.Meta(ge=0)] = 5000  # fewer templates: exact search, no index
    person_match: Literal["best", "mean"] = "best"


class CropSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Face crops (and embeddings) attached to events."""

    policy: Literal["all", "unknown", "none"] = "all"
    max_bytes: Annotated[int, msgspec.Meta(ge=1000)] = 30000
    jpeg_quality: Annotated[int, msgspec.Meta(ge=1, le=100)] = 85
    max_side: Annotated[int, msgspec.Meta(ge=32)] = 160
    embedding: bool = True  # events carry the track's best face embedding (facegate.event/1.1)


class OutboxSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The durable store of events not yet confirmed by central."""

    path: str = "/var/lib/facegate/outbox.db"
    max_rows: Count = 100_000
    max_bytes: Annotated[int, msgspec.Meta(ge=1_000_000)] = 500_000_000
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    resend_after_s: Seconds = 30.0
    batch: Count = 100
    synchronous: Literal["NORMAL", "FULL"] = "FULL"


class BatchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Frames of several cameras taken together through the models (docs/edge.md)."""

    max_frames: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8  # frames per detector run at most
    max_faces: Annotated[int, msgspec.Meta(ge=1, le=256)] = 32  # faces per embedder run at most
    # how long the first frame waits for the other cameras' frames to fill a batch (0: take what waits)
    max_wait_ms: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    # inference worker threads (0: one on a GPU, two on a CPU); each takes the frames of the cameras the
    # others are not processing (edge/inference/scheduler.py)
    workers: Annotated[int, msgspec.Meta(ge=0, le=16)] = 0


class HealthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The local /healthz, /readyz and /metrics endpoint."""

    host: str = "0.0.0.0"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 9108


class DeviceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One edge box's whole configuration."""

    site: str
    edge: str
    broker: BrokerSettings
    central: CentralSettings
    profile: str = ""  # a profile file this one builds on, relative to this file's directory
    sync_only: bool = False  # True: no cameras, only keep the galleries in sync
    cameras: tuple[Camera, ...] = ()
    camera_defaults: CameraDefaults = CameraDefaults()
    pipeline: PipelineSettings = PipelineSettings()
    batching: BatchSettings = BatchSettings()
    thresholds: Thresholds = Thresholds()
    tracker: TrackerSettings = TrackerSettings()
    gallery: GallerySettings = GallerySettings()
    crops: CropSettings = CropSettings()
    outbox: OutboxSettings = OutboxSettings()
    heartbeat_s: Annotated[float, msgspec.Meta(ge=1.0)] = 30.0
    health: HealthSettings = HealthSettings()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def pipeline_settings(self) -> PipelineSettings:
        """The pipeline settings with the edge's matching threshold (None: the recognizer's default)."""
        return msgspec.structs.replace(self.pipeline, match_threshold=self.thresholds.match)
