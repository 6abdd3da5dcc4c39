"""The fleet's state as the gauges of `FleetCollector` show it, from one read of PostgreSQL
(central/monitoring/repository.py).

An edge is *online* when its stored status is `online` and it was last seen within the staleness
window (`edge_offline_after_s`, default 90 s: three missed 30 s heartbeats), both judged by the
database clock. Its stats are the last heartbeat's figures (`edges.stats`, common/messages.py
`Heartbeat`): `outbox_backlog`, `outbox_unconfirmed` and `cameras.{camera}.fps`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class EdgeGauges:
    """What one edge's gauges show. `None`: not known (never seen, or never reported that figure)."""

    site: str
    edge: str
    up: bool
    last_seen_s: float | None
    outbox_backlog: float | None
    unconfirmed_events: float | None
    gallery_lag: float
    fps: float | None


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """Every edge's gauges, plus which dependencies answered the last refresh (1 up, 0 down)."""

    edges: tuple[EdgeGauges, ...] = ()
    dependencies: Mapping[str, int] = field(default_factory=dict)
    refreshed_at: float | None = None
    """Unix time of the last successful read of the edges (None: none yet)."""


def edge_gauges(row: tuple[Any, ...]) -> EdgeGauges:
    """One edge's gauges from a row of central/monitoring/repository.py `fleet_rows`."""
    site, edge, up, since_seen, stats, lag = row
    return EdgeGauges(
        site=site,
        edge=edge,
        up=bool(up),
        last_seen_s=None if since_seen is None else max(0.0, since_seen),
        outbox_backlog=_number(stats.get("outbox_backlog")),
        unconfirmed_events=_number(stats.get("outbox_unconfirmed")),
        gallery_lag=lag,
        fps=_fps(stats.get("cameras")) if up else 0.0,
    )


def _fps(cameras: object) -> float | None:
    """The sum of the cameras' fps (an offline edge shows 0: it processes nothing)."""
    if not isinstance(cameras, Mapping):
        return None
    rates = [_number(state.get("fps")) for state in cameras.values() if isinstance(state, Mapping)]
    return sum(rate for rate in rates if rate is not None)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
