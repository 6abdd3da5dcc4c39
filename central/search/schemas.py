"""Response of `POST /api/v1/search`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class PersonHit(msgspec.Struct, frozen=True, kw_only=True):
    """A person whose best template is `score` (cosine) from the photo's face; `match`: at least the
    threshold."""

    person_id: UUID
    external_id: str | None
    display_name: str
    score: float
    match: bool


class EventHit(msgspec.Struct, frozen=True, kw_only=True):
    """An event whose face is `score` from the photo's (at least the threshold): where and when."""

    event_id: UUID
    ts: datetime
    site: str
    edge: str
    camera: str
    person_id: UUID | None
    score: float


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """`people`: the best-matching people, best first; `events`: matching events in the sites the key
    may see (or `site`), best first; `threshold`: the cosine both are judged by; `quality`: the photo
    face's quality."""

    model_id: str
    threshold: float
    quality: float
    people: list[PersonHit]
    events: list[EventHit]
