"""Request and response types of `/api/v1/watchlists` and `/api/v1/watch-rules` (docs/notifications.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from central.schemas import Slug

RuleName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\A[^\x00-\x1f\x7f]+\Z")]
Camera = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"\A[^\x00-\x1f\x7f/#+]+\Z")]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7)]
"""ISO weekday: 1 is Monday, 7 Sunday."""
Minute = Annotated[int, msgspec.Meta(ge=0, le=1440)]
Email = Annotated[
    str, msgspec.Meta(max_length=254, pattern=r"\A[^@\s<>,;\x00-\x1f]{1,64}@[A-Za-z0-9.-]{1,189}\Z")
]
WebhookUrl = Annotated[str, msgspec.Meta(min_length=8, max_length=2048, pattern=r"\Ahttps?://[^\s]+\Z")]


class WatchlistCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: RuleName
    people: Annotated[list[UUID], msgspec.Meta(max_length=1000)] = []


class WatchlistUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: RuleName | None = None
    people: Annotated[list[UUID], msgspec.Meta(max_length=1000)] | None = None
    """The whole new list of members (replaces the old one)."""


class WatchlistRead(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    people: list[UUID]
    created_at: datetime
    updated_at: datetime


class RuleWhen(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Days of the week and a window of the day, read in each site's time zone. `end_minute` before
    `start_minute` runs past midnight (22:00-06:00 is 1320..360); 0..1440 is the whole day."""

    days: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7]
    )
    start_minute: Minute = 0
    end_minute: Minute = 1440


class RuleWrite(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A whole rule (POST creates one, PUT replaces one)."""

    name: RuleName
    people: Annotated[list[UUID], msgspec.Meta(max_length=1000)] = []
    watchlists: Annotated[list[UUID], msgspec.Meta(max_length=100)] = []
    unknown: bool = False
    """Also any face the gallery did not recognise."""
    sites: Annotated[list[Slug], msgspec.Meta(max_length=1000)] = []
    """Empty: every site (unrestricted keys only)."""
    cameras: Annotated[list[Camera], msgspec.Meta(max_length=1000)] = []
    """Empty: every camera of those sites."""
    when: RuleWhen = msgspec.field(default_factory=RuleWhen)
    cooldown_s: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 60
    """At most one notification per person (or unknown face) and camera within this many seconds."""
    enabled: bool = True
    webhook_url: WebhookUrl | None = None
    """Admins only. A private, loopback or link-local address is refused unless
    FACEGATE_WEBHOOK_ALLOW_NETS lists it."""
    email_to: Annotated[list[Email], msgspec.Meta(max_length=20)] = []
    mqtt: bool = False
    """Publish on `facegate/notify/v1/{rule id}` (read with the integrations' broker login)."""


class RuleRead(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    enabled: bool
    people: list[UUID]
    watchlists: list[UUID]
    unknown: bool
    sites: list[str]
    cameras: list[str]
    when: RuleWhen
    cooldown_s: int
    webhook_url: str | None
    email_to: list[str]
    mqtt: bool
    mqtt_topic: str | None
    created_at: datetime
    updated_at: datetime


class RuleCreated(msgspec.Struct, frozen=True):
    """A new rule, with its webhook signing secret shown this once (null without a webhook)."""

    rule: RuleRead
    webhook_secret: str | None


class MqttLogin(msgspec.Struct, frozen=True):
    """The integrations' broker login, shown once: it may read `topic_filter` and nothing else."""

    username: str
    password: str
    topic_filter: str
