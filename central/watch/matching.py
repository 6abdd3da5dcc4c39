"""Which rules take an event: plain functions over plain values, no I/O (the hours are tested with any
instant, no waiting).

`Rule` is what ingest needs of a watch rule; `takes(rule, event, members, zone)` says whether the rule
wants the event: who (the person, a member of one of its watchlists, or an unknown face), where (site,
camera) and when (the event's time, in the site's time zone, on one of the rule's days and inside its
window). The cooldown is not here: it is one upsert in PostgreSQL (central/notify/repository.py), so that
replicas agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

DAY_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class Rule:
    id: UUID
    name: str
    people: frozenset[UUID]
    watchlists: frozenset[UUID]
    unknown: bool
    sites: frozenset[str]
    cameras: frozenset[str]
    days: frozenset[int]
    start_minute: int
    end_minute: int
    cooldown_s: int
    channels: tuple[str, ...]
    """`webhook`, `email`, `mqtt`: the channels it delivers on."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """What of an event the rules look at."""

    person_id: UUID | None
    site: str
    camera: str
    ts: datetime


def in_window(rule: Rule, at: datetime, zone: ZoneInfo) -> bool:
    """Whether `at` (aware) falls on one of the rule's days inside its window, in `zone`. A window that
    runs past midnight (end before start) belongs to the day it started on."""
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute
    start, end = rule.start_minute, rule.end_minute
    if start == end:
        return False
    if start < end:
        return local.isoweekday() in rule.days and start <= minute < end
    if minute >= start:  # the evening part: today's window
        return local.isoweekday() in rule.days
    if minute < end:  # the morning part: yesterday's window
        return (local.isoweekday() - 2) % 7 + 1 in rule.days
    return False


def wants(rule: Rule, sighting: Sighting, members: frozenset[UUID]) -> bool:
    """Who and where: `members` is the set of people on the rule's watchlists."""
    if rule.sites and sighting.site not in rule.sites:
        return False
    if rule.cameras and sighting.camera not in rule.cameras:
        return False
    person = sighting.person_id
    if person is None:
        return rule.unknown
    return person in rule.people or person in members


def takes(rule: Rule, sighting: Sighting, members: frozenset[UUID], zone: ZoneInfo) -> bool:
    """Who, where and when (not the cooldown)."""
    return wants(rule, sighting, members) and in_window(rule, sighting.ts, zone)


def zone_of(name: str) -> ZoneInfo:
    """The site's zone; UTC for a name the zone database lost since it was stored."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")
