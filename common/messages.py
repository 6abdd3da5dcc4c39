"""MQTT message schemas, contract version 1 (DESIGN.md). msgspec Structs, JSON on the wire.

Every message has `schema` (e.g. "facegate.event/1"), `id` (UUIDv7, used for idempotency) and `ts`
(UTC). Readers tolerate unknown fields (a newer minor version may add some) and accept any minor
version of the major they know ("facegate.event/1" or "facegate.event/1.3"). Embeddings travel as
little-endian float32 bytes (base64 in JSON).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray

from common.errors import FacegateError
from common.ids import uuid7


class MessageError(FacegateError):
    """A payload is malformed: not JSON, a wrong type, a missing field or another schema."""


def now() -> datetime:
    return datetime.now(UTC)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    schema: str
    id: str = msgspec.field(default_factory=uuid7)
    ts: datetime = msgspec.field(default_factory=now)


class Event(Message, frozen=True, kw_only=True):
    """A recognition: one per confirmed track, and one more each time the track's identity changes."""

    schema: str = "facegate.event/1"
    site: str
    edge: str
    camera: str
    seq: int  # per camera, +1 for each event, so order and gaps can be checked
    track_id: int
    kind: Literal["recognized", "unknown", "changed"]
    person_id: str | None
    score: float  # best cosine similarity to person_id's templates (or to anyone, for unknown)
    threshold: float
    quality: float
    bbox: tuple[float, float, float, float]
    model: str
    gallery: str | None = None
    gallery_version: int = 0
    first_seen: datetime | None = None
    crop_jpeg: bytes | None = None
    crop_key: str | None = None


class CameraState(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    fps: float = 0.0
    frames: int = 0
    dropped_frames: int = 0


class Status(Message, frozen=True, kw_only=True):
    """Retained; the Last Will publishes state=offline."""

    schema: str = "facegate.status/1"
    site: str
    edge: str
    state: Literal["online", "offline"]
    software: str = ""
    detector: str = ""
    recognizer: str = ""
    galleries: dict[str, int] = msgspec.field(default_factory=dict)


class Heartbeat(Message, frozen=True, kw_only=True):
    schema: str = "facegate.heartbeat/1"
    site: str
    edge: str
    uptime_s: float
    cameras: dict[str, CameraState] = msgspec.field(default_factory=dict)
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    outbox_backlog: int = 0
    outbox_unconfirmed: int = 0
    cpu_percent: float = 0.0
    gpu_percent: float | None = None
    galleries: dict[str, int] = msgspec.field(default_factory=dict)


class Template(msgspec.Struct, frozen=True, kw_only=True):
    person_id: str
    template_id: str
    model: str
    embedding: bytes  # little-endian float32

    def vector(self) -> NDArray[np.float32]:
        return np.frombuffer(self.embedding, dtype="<f4").astype(np.float32)


class GalleryManifest(Message, frozen=True, kw_only=True):
    """Retained on the gallery's manifest topic: what its current version is and where its snapshot is."""

    schema: str = "facegate.gallery-manifest/1"
    gallery: str
    version: int
    model: str
    snapshot_key: str = ""
    snapshot_sha256: str = ""
    snapshot_version: int = 0
    template_count: int = 0


class GalleryChange(Message, frozen=True, kw_only=True):
    """The delta from version `version - 1` to `version`."""

    schema: str = "facegate.gallery-change/1"
    gallery: str
    version: int
    model: str
    upserts: list[Template] = msgspec.field(default_factory=list)
    deleted_templates: list[str] = msgspec.field(default_factory=list)
    deleted_people: list[str] = msgspec.field(default_factory=list)


class Receipt(Message, frozen=True, kw_only=True):
    """Central's confirmation that these events are committed."""

    schema: str = "facegate.receipt/1"
    event_ids: list[str]


class Command(Message, frozen=True, kw_only=True):
    schema: str = "facegate.command/1"
    action: Literal["resync_gallery", "reload_config", "erase_person"]
    gallery: str | None = None
    person_id: str | None = None


class SnapshotTemplate(msgspec.Struct, frozen=True, kw_only=True):
    person_id: str
    template_id: str
    embedding: bytes  # little-endian float32


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A whole gallery at one version: one MessagePack document; the manifest gives its sha256."""

    schema: str = "facegate.gallery-snapshot/1"
    gallery: str
    version: int
    model: str
    embedding_size: int
    created: datetime = msgspec.field(default_factory=now)
    templates: list[SnapshotTemplate] = msgspec.field(default_factory=list)


M = TypeVar("M", bound=msgspec.Struct)
_json = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """JSON bytes of a message."""
    return _json.encode(message)


def decode(payload: bytes, kind: type[M]) -> M:
    """Decode and validate a JSON payload as `kind`; any problem is a MessageError naming it."""
    try:
        message = msgspec.json.decode(payload, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise MessageError(f"malformed {kind.__name__}: {err}") from err
    _check_schema(getattr(message, "schema", ""), kind)
    return message


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return msgspec.msgpack.encode(snapshot)


def decode_snapshot(data: bytes) -> Snapshot:
    try:
        snapshot = msgspec.msgpack.decode(data, type=Snapshot)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise MessageError(f"malformed gallery snapshot: {err}") from err
    _check_schema(snapshot.schema, Snapshot)
    return snapshot


def _check_schema(schema: str, kind: type[msgspec.Struct]) -> None:
    expected = kind.__struct_defaults__[kind.__struct_fields__.index("schema")]
    family, _, version = str(expected).partition("/")
    their_family, _, their_version = schema.partition("/")
    if their_family != family or their_version.split(".")[0] != version:
        raise MessageError(f"expected schema {expected} (any minor version), got {schema!r}")


def embedding_bytes(vector: NDArray[np.float32]) -> bytes:
    """An embedding as the little-endian float32 bytes messages carry."""
    return np.asarray(vector, dtype="<f4").tobytes()
