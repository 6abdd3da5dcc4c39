"""Request and response bodies of `/api/v1/unknown-clusters`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from central.people.schemas import MAX_PERSON_GALLERIES
from central.schemas import ExternalId, Name, Slug

Photos = Annotated[int, msgspec.Meta(ge=0, le=10)]


class ClusterRead(msgspec.Struct, frozen=True, kw_only=True):
    """A group of unknown faces: `members` events at `sites`, between `first_seen` and `last_seen`;
    `best_crop_url` is a presigned URL of its best-quality crop (valid FACEGATE_PRESIGN_TTL_S)."""

    id: int
    members: int
    sites: list[str]
    first_seen: datetime
    last_seen: datetime
    best_event_id: UUID | None
    best_crop_url: str | None
    status: Literal["open", "enrolled", "merged"]
    person_id: UUID | None


class ClusterEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_id: UUID
    ts: datetime
    site: str
    camera: str
    quality: float
    crop_url: str | None


class ClusterDetail(ClusterRead, frozen=True, kw_only=True):
    events: list[ClusterEvent]
    """The newest 100 events (of the sites the key may see)."""


class ClusterPage(msgspec.Struct, frozen=True):
    items: list[ClusterRead]
    next: int | None = None
    """Pass as `before` for the next (older) page; null on the last page."""


class ClusterEnroll(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Enroll the cluster as a new person: their best `photos` crops go through the photo gate."""

    external_id: ExternalId
    display_name: Name = ""
    galleries: Annotated[list[Slug], msgspec.Meta(max_length=MAX_PERSON_GALLERIES)] = []
    photos: Photos = 3


class ClusterMerge(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The cluster is an existing person; `photos` of its best crops become their templates (0: none)."""

    person_id: UUID
    photos: Photos = 0


class ClusterOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What enrolling or merging did: the person, the events now theirs, each crop's photo-gate result
    (`accepted` or the reason: low_quality, no_face, duplicate_person, ...)."""

    cluster_id: int
    person_id: UUID
    events: int
    templates: list[UUID]
    refused: list[str]
