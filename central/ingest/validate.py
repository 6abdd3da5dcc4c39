"""Decode and check one event message: `check(message, known)` -> Accepted or Rejected (a dead letter).

Reasons: `malformed` (not a valid facegate.event/1, or values PostgreSQL cannot store), `topic_mismatch`
(the topic is not an edge's events topic, or the payload names another site or edge than its topic),
`unknown_edge` (the topic's edge is not registered).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

from central.events.repository import EventRow
from central.mqtt.client import Incoming
from common.messages import Event, MessageError, decode
from common.topics import TopicError, parse_topic

MALFORMED, TOPIC_MISMATCH, UNKNOWN_EDGE = "malformed", "topic_mismatch", "unknown_edge"
INT64 = 2**63
INT32 = 2**31
REAL_MAX = 3.4e38  # PostgreSQL real


@dataclass(frozen=True, slots=True)
class Accepted:
    message: Incoming
    event: Event
    row: EventRow  # crop_key not set yet


@dataclass(frozen=True, slots=True)
class Rejected:
    message: Incoming
    reason: str
    detail: str


Known = Callable[[str, str], Awaitable[bool]]


async def check(message: Incoming, known: Known) -> Accepted | Rejected:
    """Accepted with the row to store, or Rejected with the dead-letter reason."""
    try:
        topic = parse_topic(message.topic)
    except TopicError as err:
        return Rejected(message, TOPIC_MISMATCH, str(err))
    if topic.kind != "events":
        return Rejected(message, TOPIC_MISMATCH, f"not an events topic: {message.topic}")
    try:
        event = decode(message.payload, Event)
        row = to_row(event)
    except (MessageError, ValueError) as err:
        return Rejected(message, MALFORMED, str(err)[:500])
    if (event.site, event.edge) != (topic.site, topic.edge):
        detail = f"payload names {event.site}/{event.edge}, topic {topic.site}/{topic.edge}"
        return Rejected(message, TOPIC_MISMATCH, detail)
    if not await known(topic.site, topic.edge):
        return Rejected(message, UNKNOWN_EDGE, f"edge {topic.site}/{topic.edge} is not registered")
    return Accepted(message, event, row)


def to_row(event: Event) -> EventRow:
    """The row of an event; ValueError for what PostgreSQL would refuse (a bad UUID, a naive time, an
    integer out of range, a NUL character): one such event must never block a whole batch."""
    for name, value in (("seq", event.seq), ("track_id", event.track_id)):
        if not -INT64 <= value < INT64:
            raise ValueError(f"{name}={value} is out of range")
    if not -INT32 <= event.gallery_version < INT32:
        raise ValueError(f"gallery_version={event.gallery_version} is out of range")
    reals = (event.score, event.threshold, event.quality, *event.bbox)
    if not all(math.isfinite(x) and abs(x) < REAL_MAX for x in reals):
        raise ValueError("a score, threshold, quality or bbox value is not a finite real")
    texts = (event.camera, event.model, event.gallery or "", event.site, event.edge)
    if any("\x00" in text for text in texts):
        raise ValueError("a text field contains a NUL character")
    return EventRow(
        id=UUID(event.id),
        ts=event.ts,
        site_id=event.site,
        edge_id=event.edge,
        camera=event.camera,
        track_id=event.track_id,
        kind=event.kind,
        person_id=UUID(event.person_id) if event.person_id is not None else None,
        score=event.score,
        threshold=event.threshold,
        quality=event.quality,
        bbox=event.bbox,
        model_id=event.model,
        seq=event.seq,
        gallery_id=event.gallery,
        gallery_version=event.gallery_version,
        first_seen=event.first_seen,
    )
