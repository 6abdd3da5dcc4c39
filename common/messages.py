"""MQTT message schemas, contract version 1 (DESIGN.md). msgspec Structs, JSON on the wire.

Every message has `schema` (e.g. "facegate.event/1"), `id` (UUIDv7, used for idempotency) and `ts`
(UTC). Readers tolerate unknown fields (a newer minor version may add some) and accept any minor
version of the major they know ("facegate.event/1" or "facegate.event/1.3"). Embeddings travel as
little-endian float32 bytes (base64 in JSON).

Limits (checked when decoding; DESIGN.md and docs/central-ingest.md list them): names (site, edge,
camera, gallery, ids) at most 64 characters, model ids and versions 128, `ts` and every other time
between the years 2000 and 2200 (TS_MIN_YEAR..TS_MAX_YEAR: arithmetic on them cannot overflow), a crop
at most 1 MiB, a heartbeat or status at most 64 cameras and galleries, a receipt at most 100 000 ids.
Nesting deeper than the schema is refused by central before decoding (MAX_MESSAGE_DEPTH).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray

from common.errors import FacegateError
from common.ids import uuid7


class MessageError(FacegateError):
    """A payload is malformed: not JSON, a wrong type, a missing field or another schema."""


NAME_MAX_CHARS = 64
"""Sites, edges, cameras, galleries (topic segments and slugs) and message ids."""
MODEL_MAX_CHARS = 128
"""Model ids, software versions, schema names."""
TS_MIN_YEAR, TS_MAX_YEAR = 2000, 2200
"""The years a message's times may have: far from datetime's limits, so no conversion overflows."""
CROP_MAX_BYTES = 1024 * 1024
MAX_ENTRIES = 64
"""Cameras and galleries in one heartbeat or status."""
MAX_RECEIPT_IDS = 100_000
EMBEDDING_MAX_BYTES = 512 * 4
"""An event's embedding: at most 512 float32 (ArcFace; SFace's are 128)."""
MAX_NEGATIVES = 10_000
"""Negative examples in one gallery change."""
MAX_MESSAGE_DEPTH = 8
"""Levels of arrays and objects a message may nest (the deepest schema needs 3)."""

Name = Annotated[str, msgspec.Meta(max_length=NAME_MAX_CHARS)]
Text = Annotated[str, msgspec.Meta(max_length=MODEL_MAX_CHARS)]
Number = Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


def check_time(value: datetime | None, name: str) -> None:
    """ValueError (a ValidationError when decoding) unless `value` is None or within the allowed years."""
    if value is not None and not TS_MIN_YEAR <= value.year <= TS_MAX_YEAR:
        raise ValueError(f"`{name}` must be between the years {TS_MIN_YEAR} and {TS_MAX_YEAR}, got {value}")


def now() -> datetime:
    return datetime.now(UTC)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    schema: Text
    id: Name = msgspec.field(default_factory=uuid7)
    ts: datetime = msgspec.field(default_factory=now)

    def __post_init__(self) -> None:
        check_time(self.ts, "ts")


class FaceEmbedding(msgspec.Struct, frozen=True, kw_only=True):
    """An event's face embedding (since facegate.event/1.1): little-endian float32 bytes (base64 in JSON)
    and the model that made them. Readers older than 1.1 ignore it."""

    model: Text
    vector: Annotated[bytes, msgspec.Meta(min_length=4, max_length=EMBEDDING_MAX_BYTES)]

    def __post_init__(self) -> None:
        if len(self.vector) % 4:
            raise ValueError("`embedding.vector` must be float32 values (a multiple of 4 bytes)")

    def values(self) -> NDArray[np.float32]:
        return np.frombuffer(self.vector, dtype="<f4").astype(np.float32)


class Event(Message, frozen=True, kw_only=True):
    """A recognition: one per confirmed track, and one more each time the track's identity changes.

    1.1 adds `embedding`, the track's best face embedding (optional; older readers ignore it)."""

    schema: Text = "facegate.event/1.1"
    site: Name
    edge: Name
    camera: Name
    seq: int  # per camera, +1 for each event, so order and gaps can be checked
    track_id: int
    kind: Literal["recognized", "unknown", "changed"]
    person_id: Name | None
    score: float  # best cosine similarity to person_id's templates (or to anyone, for unknown)
    threshold: float
    quality: float
    bbox: tuple[float, float, float, float]
    model: Text
    gallery: Name | None = None
    gallery_version: int = 0
    first_seen: datetime | None = None
    crop_jpeg: Annotated[bytes, msgspec.Meta(max_length=CROP_MAX_BYTES)] | None = None
    crop_key: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    embedding: FaceEmbedding | None = None

    def __post_init__(self) -> None:
        check_time(self.ts, "ts")
        check_time(self.first_seen, "first_seen")


Galleries = Annotated[
    dict[Name, Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]], msgspec.Meta(max_length=MAX_ENTRIES)
]


class CameraState(msgspec.Struct, frozen=True, kw_only=True):
    state: Name
    fps: Number = 0.0
    frames: Count = 0
    dropped_frames: Count = 0


class Status(Message, frozen=True, kw_only=True):
    """Retained; the Last Will publishes state=offline."""

    schema: Text = "facegate.status/1"
    site: Name
    edge: Name
    state: Literal["online", "offline"]
    software: Text = ""
    detector: Text = ""
    recognizer: Text = ""
    galleries: Galleries = msgspec.field(default_factory=dict)


class Heartbeat(Message, frozen=True, kw_only=True):
    schema: Text = "facegate.heartbeat/1"
    site: Name
    edge: Name
    uptime_s: Number
    cameras: Annotated[dict[Name, CameraState], msgspec.Meta(max_length=MAX_ENTRIES)] = msgspec.field(
        default_factory=dict
    )
    latency_ms_p50: Number = 0.0
    latency_ms_p95: Number = 0.0
    outbox_backlog: Count = 0
    outbox_unconfirmed: Count = 0
    cpu_percent: Number = 0.0
    gpu_percent: Number | None = None
    galleries: Galleries = msgspec.field(default_factory=dict)


class Template(msgspec.Struct, frozen=True, kw_only=True):
    person_id: str
    template_id: str
    model: str
    embedding: bytes  # little-endian float32

    def vector(self) -> NDArray[np.float32]:
        return np.frombuffer(self.embedding, dtype="<f4").astype(np.float32)


class Negative(msgspec.Struct, frozen=True, kw_only=True):
    """A negative example of a person (since gallery-change/1.1 and gallery-snapshot/1.1): a face an
    operator said is *not* them. Edges veto the person when a face is closer to their negatives than to
    their templates (edge/gallery/matcher.py, `negative_margin`); older edges ignore negatives."""

    person_id: Name
    negative_id: Name
    embedding: Annotated[bytes, msgspec.Meta(max_length=EMBEDDING_MAX_BYTES * 8)]  # little-endian float32

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
    """The delta from version `version - 1` to `version`. 1.1 adds `negatives` (added or replaced
    negative examples) and `deleted_negatives` (their ids); a deleted person's negatives go with them."""

    schema: str = "facegate.gallery-change/1.1"
    gallery: str
    version: int
    model: str
    upserts: list[Template] = msgspec.field(default_factory=list)
    deleted_templates: list[str] = msgspec.field(default_factory=list)
    deleted_people: list[str] = msgspec.field(default_factory=list)
    negatives: Annotated[list[Negative], msgspec.Meta(max_length=MAX_NEGATIVES)] = msgspec.field(
        default_factory=list
    )
    deleted_negatives: Annotated[list[Name], msgspec.Meta(max_length=MAX_NEGATIVES)] = msgspec.field(
        default_factory=list
    )


class RejectedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event central refused for good (dead-lettered): `reason` is the dead letter's reason."""

    id: Name
    reason: Name


class Receipt(Message, frozen=True, kw_only=True):
    """Central's confirmation that these events are committed (`event_ids`) or refused for good
    (`rejected`, since 1.1: the edge deletes them from its outbox and counts them; an edge older than
    1.1 ignores the field and keeps resending those events, each resend dead-lettered again)."""

    schema: Text = "facegate.receipt/1.1"
    event_ids: Annotated[list[Name], msgspec.Meta(max_length=MAX_RECEIPT_IDS)]
    rejected: Annotated[list[RejectedEvent], msgspec.Meta(max_length=MAX_RECEIPT_IDS)] = msgspec.field(
        default_factory=list
    )


class Command(Message, frozen=True, kw_only=True):
    schema: str = "facegate.command/1"
    action: Literal["resync_gallery", "reload_config", "erase_person"]
    gallery: str | None = None
    person_id: str | None = None
    crop_policy: Literal["none", "device"] | None = None
    """With reload_config: central's retention keeps no crops of the site ("none": send none), or
    leaves it to the device file's `crops.policy` ("device"). Older edges ignore it."""


class SnapshotTemplate(msgspec.Struct, frozen=True, kw_only=True):
    person_id: str
    template_id: str
    embedding: bytes  # little-endian float32


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A whole gallery at one version: one MessagePack document; the manifest gives its sha256.
    1.1 adds `negatives`: the negative examples of the people it holds (older edges ignore them)."""

    schema: str = "facegate.gallery-snapshot/1.1"
    gallery: str
    version: int
    model: str
    embedding_size: int
    created: datetime = msgspec.field(default_factory=now)
    templates: list[SnapshotTemplate] = msgspec.field(default_factory=list)
    negatives: list[Negative] = msgspec.field(default_factory=list)


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
    major = version.split(".")[0]
    if their_family != family or their_version.split(".")[0] != major:
        raise MessageError(f"expected schema {family}/{major} (any minor version), got {schema!r}")


def embedding_bytes(vector: NDArray[np.float32]) -> bytes:
    """An embedding as the little-endian float32 bytes messages carry."""
    return np.asarray(vector, dtype="<f4").tobytes()
