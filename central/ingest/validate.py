"""Decode and check event messages: `check(message)` -> Accepted or Rejected (a dead letter).

Reasons: `malformed` (not a valid facegate.event/1, or values PostgreSQL cannot store), `topic_mismatch`
(the topic is not an edge's events topic, or the payload names another site or edge than its topic),
`unknown_edge` (the topic's edge is not registered; the consumer checks that per batch, `unknown`).

The payload is decoded once, straight into `IngestEvent`: `common.messages.Event` (the wire contract)
with the limits of the `events` columns as msgspec constraints, so msgspec's C decoder does every check
PostgreSQL would otherwise refuse (a bad UUID, a time without a timezone, an integer or a real out of
range) and nothing is validated twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

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


class IngestEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A facegate.event/1 as central stores it (field names and meaning: `common.messages.Event`; a test
    keeps the two in step). `id` and `ts` are required here: an event without its own id could not be
    stored idempotently. `crop_key` is not read: central names crops itself."""

    schema: str
    id: UUID
    ts: AwareTime
    site: str
    edge: str
    camera: str
    seq: Int64
    track_id: Int64
    kind: Literal["recognized", "unknown", "changed"]
    person_id: UUID | None
    score: Real
    threshold: Real
    quality: Real
    bbox: tuple[Real, Real, Real, Real]
    model: str
    gallery: str | None = None
    gallery_version: Int32 = 0
    first_seen: AwareTime | None = None
    crop_jpeg: bytes | None = None


_decoder = msgspec.json.Decoder(IngestEvent)


@dataclass(frozen=True, slots=True)
class Accepted:
    message: Incoming
    event: IngestEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    message: Incoming
    reason: str
    detail: str


class Checker:
    """`check(message)`: decode and check one message. Parsed topics are cached (a fleet has few)."""

    def __init__(self) -> None:
        self._topics: dict[str, tuple[str, str] | str] = {}  # topic -> (site, edge), or why refused

    def check(self, message: Incoming) -> Accepted | Rejected:
        """Accepted, or Rejected with the dead-letter reason. Whether the edge is registered is the
        caller's check (`unknown`), once per batch."""
        topic = self._topic(message.topic)
        if isinstance(topic, str):
            return Rejected(message, TOPIC_MISMATCH, topic)
        payload = message.payload
        try:
            event = _decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            return Rejected(message, MALFORMED, f"malformed Event: {err}"[:500])
        family, _, version = event.schema.partition("/")
        if family != SCHEMA_FAMILY or version.split(".")[0] != SCHEMA_MAJOR:
            detail = (
                f"expected schema {SCHEMA_FAMILY}/{SCHEMA_MAJOR} (any minor version), got {event.schema!r}"
            )
            return Rejected(message, MALFORMED, detail[:500])
        if b"\\u0000" in payload and _has_nul(event):  # JSON escapes NUL; PostgreSQL text refuses it
            return Rejected(message, MALFORMED, "a text field contains a NUL character")
        if event.site != topic[0] or event.edge != topic[1]:
            detail = f"payload names {event.site}/{event.edge}, topic {topic[0]}/{topic[1]}"
            return Rejected(message, TOPIC_MISMATCH, detail)
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


def _has_nul(event: IngestEvent) -> bool:
    texts = (event.schema, event.camera, event.model, event.gallery or "", event.site, event.edge)
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
