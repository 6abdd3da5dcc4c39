"""Decode and check event messages: `check(message)` -> Accepted or Rejected (a dead letter).

Reasons: `malformed` (not a valid facegate.event/1, or values PostgreSQL cannot store), `topic_mismatch`
(the topic is not an edge's events topic, or the payload names another site or edge than its topic),
`unknown_edge` (the topic's edge is not registered; the consumer checks that per batch, `unknown`).

The payload is decoded once, straight into `IngestEvent`: `common.messages.Event` (the wire contract)
with the limits of the `events` columns as msgspec constraints, so msgspec's C decoder does every check
PostgreSQL would otherwise refuse (a bad UUID, a time without a timezone, an integer or a real out of
range) and nothing is validated twice. The text fields have the limits of `common.messages` (names 64
characters, model ids 128), the times the years 2000..2200 (`check_time`: nothing can overflow later),
a crop 1 MiB. A payload with many brackets is measured for nesting first (`json_too_deep`, linear, no
recursion): deeper than MAX_MESSAGE_DEPTH is `malformed` before msgspec recurses into it. Any other
error while checking one message (whatever it is) dead-letters that message only.

Dead letters whose topic is an edge's events topic and whose payload names an event id (even a payload
that is otherwise malformed) carry `origin` and `event_id`: central tells that edge they are rejected
(`Receipt.rejected`), so it stops resending them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from central.http.request import json_too_deep
from common.messages import (
    CROP_MAX_BYTES,
    EMBEDDING_MAX_BYTES,
    MAX_MESSAGE_DEPTH,
    MODEL_MAX_CHARS,
    NAME_MAX_CHARS,
    TS_MAX_YEAR,
    TS_MIN_YEAR,
    check_time,
)
from common.mqtt.incoming import Incoming
from common.topics import TopicError, parse_topic

MALFORMED, TOPIC_MISMATCH, UNKNOWN_EDGE = "malformed", "topic_mismatch", "unknown_edge"
REAL_MAX = 3.4e38  # PostgreSQL real
MAX_CACHED_TOPICS = 10_000
SCHEMA_FAMILY, SCHEMA_MAJOR = "facegate.event", "1"  # common.messages.Event's, any minor version

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Real = Annotated[float, msgspec.Meta(gt=-REAL_MAX, lt=REAL_MAX)]  # also refuses inf (and NaN)
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
Name = Annotated[str, msgspec.Meta(max_length=NAME_MAX_CHARS)]
Text = Annotated[str, msgspec.Meta(max_length=MODEL_MAX_CHARS)]
BRACKETS_BEFORE_DEPTH_CHECK = 32  # an event has 3 brackets; more and its depth is measured first
REJECTABLE = frozenset({"malformed", "topic_mismatch"})
"""Dead-letter reasons told to the edge (`Receipt.rejected`): the same message is refused every time.
Not `unknown_edge`: registering the edge later lets its resent events in."""


class IngestEmbedding(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """`common.messages.FaceEmbedding` (facegate.event/1.1): float32 bytes and the model that made them."""

    model: Text
    vector: Annotated[bytes, msgspec.Meta(min_length=4, max_length=EMBEDDING_MAX_BYTES)]

    def __post_init__(self) -> None:
        if len(self.vector) % 4:
            raise ValueError("`embedding.vector` must be float32 values (a multiple of 4 bytes)")


class IngestEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A facegate.event/1 as central stores it (field names and meaning: `common.messages.Event`; a test
    keeps the two in step). `id` and `ts` are required here: an event without its own id could not be
    stored idempotently. `crop_key` is not read: central names crops itself."""

    schema: Text
    id: UUID
    ts: AwareTime
    site: Name
    edge: Name
    camera: Name
    seq: Int64
    track_id: Int64
    kind: Literal["recognized", "unknown", "changed"]
    person_id: UUID | None
    score: Real
    threshold: Real
    quality: Real
    bbox: tuple[Real, Real, Real, Real]
    model: Text
    gallery: Name | None = None
    gallery_version: Int32 = 0
    first_seen: AwareTime | None = None
    crop_jpeg: Annotated[bytes, msgspec.Meta(max_length=CROP_MAX_BYTES)] | None = None
    embedding: IngestEmbedding | None = None  # since 1.1; stored in event_embeddings, not in `events`

    def __post_init__(self) -> None:
        if not TS_MIN_YEAR <= self.ts.year <= TS_MAX_YEAR:  # the common case in one comparison
            check_time(self.ts, "ts")
        if self.first_seen is not None:
            check_time(self.first_seen, "first_seen")


class _EventId(msgspec.Struct, gc=False):
    id: Name


_decoder = msgspec.json.Decoder(IngestEvent)
_id_decoder = msgspec.json.Decoder(_EventId)
_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_.:-]{1,64})"')


@dataclass(frozen=True, slots=True)
class Accepted:
    message: Incoming
    event: IngestEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """A dead letter; `origin` (site, edge) and `event_id` when the edge can be told (REJECTABLE)."""

    message: Incoming
    reason: str
    detail: str
    origin: tuple[str, str] | None = None
    event_id: str | None = None


class Checker:
    """`check(message)`: decode and check one message. Parsed topics are cached (a fleet has few)."""

    def __init__(self) -> None:
        self._topics: dict[str, tuple[str, str] | str] = {}  # topic -> (site, edge), or why refused

    def check(self, message: Incoming) -> Accepted | Rejected:
        """Accepted, or Rejected with the dead-letter reason. Whether the edge is registered is the
        caller's check (`unknown`), once per batch. Never raises: any error is this message's."""
        topic = self._topic(message.topic)
        if isinstance(topic, str):
            return Rejected(message, TOPIC_MISMATCH, topic)
        try:
            return self._payload(message, topic)
        except Exception as err:  # noqa: BLE001  # any fault of one message dead-letters it alone
            # unexpected: not told to the edge (no event id), which resends it; a fault of central's
            # never deletes edges' events
            return Rejected(message, MALFORMED, f"{type(err).__name__}: {err}"[:500])

    def _payload(self, message: Incoming, topic: tuple[str, str]) -> Accepted | Rejected:
        payload = message.payload
        if payload.count(b"[") + payload.count(b"{") > BRACKETS_BEFORE_DEPTH_CHECK and json_too_deep(
            payload, MAX_MESSAGE_DEPTH
        ):
            detail = f"the payload nests arrays and objects more than {MAX_MESSAGE_DEPTH} levels deep"
            return Rejected(message, MALFORMED, detail, topic, event_id(payload))
        try:
            event = _decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            detail = f"malformed Event: {err}"[:500]
            return Rejected(message, MALFORMED, detail, topic, event_id(payload))
        family, _, version = event.schema.partition("/")
        if family != SCHEMA_FAMILY or version.split(".")[0] != SCHEMA_MAJOR:
            detail = (
                f"expected schema {SCHEMA_FAMILY}/{SCHEMA_MAJOR} (any minor version), got {event.schema!r}"
            )
            return Rejected(message, MALFORMED, detail[:500], topic, str(event.id))
        if b"\\u0000" in payload and _has_nul(event):  # JSON escapes NUL; PostgreSQL text refuses it
            nul = "a text field contains a NUL character"
            return Rejected(message, MALFORMED, nul, topic, str(event.id))
        if event.site != topic[0] or event.edge != topic[1]:
            detail = f"payload names {event.site}/{event.edge}, topic {topic[0]}/{topic[1]}"
            return Rejected(message, TOPIC_MISMATCH, detail, topic, str(event.id))
        return Accepted(message, event)

    def _topic(self, topic: str) -> tuple[str, str] | str:
        found = self._topics.get(topic)
        if found is None:
            found = _parse(topic)
            if len(self._topics) >= MAX_CACHED_TOPICS:
                self._topics = {}
            self._topics[topic] = found
        return found


def _parse(topic: str) -> tuple[str, str] | str:
    try:
        parsed = parse_topic(topic)
    except TopicError as err:
        return str(err)
    if parsed.kind != "events":
        return f"not an events topic: {topic}"
    return parsed.site, parsed.edge


def event_id(payload: bytes) -> str | None:
    """The `id` a refused payload names, if it has a readable one (at most 64 characters): its top-level
    `id` when it is a JSON object, else (too deep, cut short, not JSON) the first `"id": "..."` in its
    first 4 KiB. A wrong guess can only name another event of the same edge (the receipt goes to the
    topic's edge), so an edge sending garbage harms only its own outbox."""
    if not json_too_deep(payload[:4096], MAX_MESSAGE_DEPTH):
        try:
            return _id_decoder.decode(payload).id
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass  # not an object with a readable id: look for one
    found = _ID.search(payload, 0, 4096)
    return found.group(1).decode() if found is not None else None


def _has_nul(event: IngestEvent) -> bool:
    embedding_model = event.embedding.model if event.embedding is not None else ""
    texts = (
        event.schema,
        event.camera,
        event.model,
        event.gallery or "",
        event.site,
        event.edge,
        embedding_model,
    )
    return any("\x00" in text for text in texts)


def unknown(accepted: list[Accepted], edges: frozenset[tuple[str, str]]) -> list[Rejected]:
    """Remove from `accepted` the events of edges not in `edges`; returns them as dead letters."""
    refused = [a for a in accepted if (a.event.site, a.event.edge) not in edges]
    if refused:
        accepted[:] = [a for a in accepted if (a.event.site, a.event.edge) in edges]
    return [
        Rejected(a.message, UNKNOWN_EDGE, f"edge {a.event.site}/{a.event.edge} is not registered")
        for a in refused
    ]
