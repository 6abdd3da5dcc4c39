"""Response types of `/api/v1/events` and `/api/v1/people/{id}/last-seen`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from central.events.repository import StoredEvent


class EventRead(msgspec.Struct, frozen=True, kw_only=True):
    """A recognition event. `person_id` null: an unknown face. `erased_at` set: the person was erased,
    the crop is gone and the row is kept for counts."""

    id: UUID
    ts: datetime
    received_at: datetime
    site: str
    edge: str
    camera: str
    seq: int
    track_id: int
    kind: str
    person_id: UUID | None
    score: float
    threshold: float
    quality: float
    bbox: list[float]
    """[x, y, w, h] in pixels of the camera frame."""
    model_id: str
    gallery_id: str | None
    gallery_version: int
    first_seen: datetime | None
    has_crop: bool
    erased_at: datetime | None


class EventDetail(EventRead, frozen=True, kw_only=True):
    crop_url: str | None = None
    """A presigned GET URL of the face crop (JPEG), valid `crop_url_expires_in` seconds; null when the
    event has no crop or was erased."""
    crop_url_expires_in: int | None = None


class EventPage(msgspec.Struct, frozen=True):
    items: list[EventRead]
    next: str | None = None
    """Pass as `cursor` for the next (older) page; null on the last page."""


class LastSeenRead(msgspec.Struct, frozen=True):
    ts: datetime
    site: str
    edge: str
    camera: str
    event_id: UUID


def event_read(event: StoredEvent) -> EventRead:
    """The API view of a stored event (the crop key itself stays internal)."""
    return EventRead(
        id=event.id,
        ts=event.ts,
        received_at=event.received_at,
        site=event.site_id,
        edge=event.edge_id,
        camera=event.camera,
        seq=event.seq,
        track_id=event.track_id,
        kind=event.kind,
        person_id=event.person_id,
        score=event.score,
        threshold=event.threshold,
        quality=event.quality,
        bbox=event.bbox,
        model_id=event.model_id,
        gallery_id=event.gallery_id,
        gallery_version=event.gallery_version,
        first_seen=event.first_seen,
        has_crop=event.crop_key is not None,
        erased_at=event.erased_at,
    )


def event_detail(event: StoredEvent, crop_url: str | None, expires_in: int | None) -> EventDetail:
    fields = msgspec.structs.asdict(event_read(event))
    return EventDetail(**fields, crop_url=crop_url, crop_url_expires_in=expires_in)
