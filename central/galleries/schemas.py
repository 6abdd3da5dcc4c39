"""Request and response Structs of the gallery routes (see docs/central-galleries.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from central.schemas import Name, Slug, whole

ModelId = Annotated[str, msgspec.Meta(pattern=whole("[A-Za-z0-9_.:-]{1,100}"), examples=["sface-2021dec"])]
"""A recognizer model id (common/models/manifest.py): templates of other models never join the gallery."""

MAX_GALLERY_SITES = 1000


class GalleryCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Slug
    name: Name
    sites: Annotated[list[Slug], msgspec.Meta(max_length=MAX_GALLERY_SITES)] = []
    model_id: ModelId | None = None
    """Default: the recognizer central enrolls with (FACEGATE_RECOGNIZER)."""


class GalleryUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    sites: Annotated[list[Slug], msgspec.Meta(max_length=MAX_GALLERY_SITES)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    """A new scope: appends a version `{"sites": [...]}` when it differs from the current one."""


class GallerySummary(msgspec.Struct, frozen=True):
    id: str
    name: str
    model_id: str
    sites: list[str]
    current_version: int
    created_at: datetime


class GalleryRead(msgspec.Struct, frozen=True):
    id: str
    name: str
    model_id: str
    sites: list[str]
    current_version: int
    created_at: datetime
    member_count: int
    template_count: int
    """Templates of the members made with the gallery's model: what the current version holds."""


class GalleryPage(msgspec.Struct, frozen=True):
    items: list[GallerySummary]
    next: str | None = None
    """Pass as `?after=` for the following page; null on the last."""


class MemberRead(msgspec.Struct, frozen=True):
    person_id: UUID
    external_id: str | None
    display_name: str
    added_at: datetime


class MemberPage(msgspec.Struct, frozen=True):
    items: list[MemberRead]
    next: str | None = None


class MembershipRead(msgspec.Struct, frozen=True):
    """The result of adding or removing a member: `version` is null when nothing changed."""

    gallery: str
    person_id: UUID
    member: bool
    version: int | None


class ChangeRead(msgspec.Struct, frozen=True):
    """One version of the log, with how many ids each part of its change names."""

    version: int
    created_at: datetime
    upserts: int
    deleted_templates: int
    deleted_people: int
    sites: list[str] | None = None
    """The new scope, for a change of scope."""


class ChangesRead(msgspec.Struct, frozen=True):
    gallery: str
    current_version: int
    items: list[ChangeRead]


class SnapshotRead(msgspec.Struct, frozen=True):
    """A stored snapshot: what the gallery manifest (common.messages.GalleryManifest) publishes."""

    gallery: str
    version: int
    sha256: str
    object_key: str
    template_count: int
    size_bytes: int
    model_id: str
    created_at: datetime
