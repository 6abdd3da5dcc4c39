"""Effective policies and what they allow, as plain functions (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Policy:
    """Days each kind of data of one site is kept (crops_days 0: none)."""

    events_days: int
    crops_days: int
    dead_letters_days: int
    deliveries_days: int


@dataclass(frozen=True, slots=True)
class Policies:
    """The defaults (for sites without a row, events of unregistered sites, dead letters of no site)
    and each site's effective policy; `audit_days` is global (audit entries belong to no site)."""

    default: Policy
    sites: dict[str, Policy]
    audit_days: int

    def of(self, site: str) -> Policy:
        return self.sites.get(site, self.default)

    def all(self) -> list[Policy]:
        return [self.default, *self.sites.values()]

    def event_cutoff(self, site: str, now: datetime) -> datetime:
        """Events of `site` before this are past its policy."""
        return now - timedelta(days=self.of(site).events_days)

    def droppable_before(self, now: datetime) -> datetime:
        """Every site's policy allows removing events before this (the longest keeps the line)."""
        return now - timedelta(days=max(p.events_days for p in self.all()))


def effective(default: Policy, own: dict[str, int | None]) -> Policy:
    """A site's policy: its own values where set, the defaults elsewhere; crops never outlive events."""
    events = own.get("events_days") or default.events_days
    crops = own.get("crops_days")
    crops = default.crops_days if crops is None else crops
    return Policy(
        events_days=events,
        crops_days=min(crops, events),
        dead_letters_days=own.get("dead_letters_days") or default.dead_letters_days,
        deliveries_days=own.get("deliveries_days") or default.deliveries_days,
    )
