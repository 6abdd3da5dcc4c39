"""Request and response types of `/api/v1/sites` and `/api/v1/edges` (docs/central-fleet-events.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from central.schemas import Name, Slug, TimeZone

EdgeStatus = Literal["online", "offline"]


class SiteCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Slug
    """The site id, an MQTT topic segment; `galleries` is refused (it would clash with gallery topics)."""
    name: Name = ""
    time_zone: TimeZone = "UTC"
    """The IANA time zone of the site (`Europe/Paris`): watch rules' days and hours are read in it."""


class SiteUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name | None = None
    time_zone: TimeZone | None = None


class SiteRead(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: datetime
    edge_count: int = 0
    time_zone: str = "UTC"


class EdgeCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Slug
    """The edge id, unique within its site (an MQTT topic segment)."""
    name: Name = ""


class EdgeRead(msgspec.Struct, frozen=True):
    """An edge as central knows it. The status fields are written by the fleet monitor from the edge's
    status and heartbeat messages; never any credential."""

    site: str
    id: str
    name: str
    created_at: datetime
    broker_username: str
    topic_prefix: str
    status: EdgeStatus
    last_seen: datetime | None
    software_version: str | None
    detector_model: str | None
    recognizer_model: str | None
    gallery_versions: dict[str, Any]
    stats: dict[str, Any]
    stats_at: datetime | None


class EdgeCredentials(msgspec.Struct, frozen=True):
    """Shown once, at registration and at each rotation: central keeps only hashes."""

    broker_username: str
    """MQTT username: `{site}/{edge}`."""
    broker_password: str
    api_key: str
    """The edge's HTTP credential: send it as `Authorization: Bearer <api_key>`."""
    topic_prefix: str
    """`facegate/v1/{site}/{edge}/`: the edge publishes its events, status and heartbeats under it."""


class EdgeRegistered(msgspec.Struct, frozen=True):
    edge: EdgeRead
    credentials: EdgeCredentials


class EdgePage(msgspec.Struct, frozen=True):
    items: list[EdgeRead]
    next: str | None = None
    """Pass as `cursor` for the next page; null on the last page."""
