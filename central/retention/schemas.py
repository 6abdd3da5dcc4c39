"""Request and response types of `/api/v1/retention` and `/api/v1/sites/{id}/retention`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Days = Annotated[int, msgspec.Meta(ge=1, le=36500)]
CropDays = Annotated[int, msgspec.Meta(ge=0, le=36500)]


class DefaultsWrite(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The policy of every site without its own value, and the audit log's."""

    events_days: Days = 365
    """Events and their embeddings."""
    crops_days: CropDays = 90
    """Face crops (0: none kept, and edges send none); at most `events_days`."""
    audit_days: Days = 730
    dead_letters_days: Days = 7
    deliveries_days: Days = 90
    """The delivery log (deliveries sent or dead, with their attempts)."""


class DefaultsRead(msgspec.Struct, frozen=True):
    events_days: int
    crops_days: int
    audit_days: int
    dead_letters_days: int
    deliveries_days: int
    updated_at: datetime


class SitePolicyWrite(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A site's own values; null (or absent) takes the default."""

    events_days: Days | None = None
    crops_days: CropDays | None = None
    dead_letters_days: Days | None = None
    deliveries_days: Days | None = None


class SitePolicyRead(msgspec.Struct, frozen=True):
    """The policy in force at a site (its own values or the defaults) and its own values."""

    site: str
    events_days: int
    crops_days: int
    dead_letters_days: int
    deliveries_days: int
    own: SitePolicyWrite
