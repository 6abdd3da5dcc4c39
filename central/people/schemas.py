"""Request and response bodies of `/api/v1/people` and its photos and templates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from central.schemas import ExternalId, Name, Slug

MAX_PERSON_GALLERIES = 100


class PersonCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    external_id: ExternalId
    """Your own unique id for the person (1-200 characters, no control characters)."""
    display_name: Name = ""
    metadata: dict[str, Any] = {}
    """Free JSON object, up to 16 KiB encoded."""
    galleries: Annotated[list[Slug], msgspec.Meta(max_length=MAX_PERSON_GALLERIES)] = []
    """Existing galleries to add the person to (at most 100)."""


class PersonUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only the fields present change; `metadata` replaces the whole object."""

    external_id: ExternalId | msgspec.UnsetType = msgspec.UNSET
    display_name: Name | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class PersonRead(msgspec.Struct, frozen=True):
    id: UUID
    external_id: str | None
    display_name: str
    metadata: dict[str, Any]
    galleries: list[str]
    template_count: int
    created_at: datetime
    updated_at: datetime


class PersonPage(msgspec.Struct, frozen=True):
    """One page of people: pass `next` as `cursor` to get the following page (null on the last)."""

    items: list[PersonRead]
    next: str | None = None


class PhotoRead(msgspec.Struct, frozen=True):
    id: UUID
    status: str
    quality: float | None
    width: int
    height: int
    created_at: datetime
    url: str
    """A presigned GET URL of the stored photo, valid FACEGATE_PRESIGN_TTL_S seconds."""


class TemplateRead(msgspec.Struct, frozen=True):
    id: UUID
    model_id: str
    embedding_size: int
    created_at: datetime
    source_photo_id: UUID | None


class TemplateDeleted(msgspec.Struct, frozen=True):
    id: UUID
    photo_deleted: bool
    """True when the template's source photo had no other template and was deleted with it."""
    gallery_versions: dict[str, int]


class EraseReport(msgspec.Struct, frozen=True):
    """What an erase removed. `already_erased`: the person was erased before (objects retried)."""

    id: UUID
    templates: int
    photos: int
    events_tombstoned: int
    snapshots: int
    objects_deleted: int
    gallery_versions: dict[str, int]
    already_erased: bool = False
    sightings: int = 0
    """Unknown events whose face matched the person's templates (at least the match threshold): their
    embeddings and crops were removed too (docs/operator-loop.md)."""
