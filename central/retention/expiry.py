"""Ingest's check that an event is not already past its site's retention policy, so an edge resending
its outbox after a long outage does not bring back data retention removed. Such events are receipted
(the edge drops them) and never stored, their crops included. The policies are read at most every
`cache_s` seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from psycopg import AsyncConnection

from central.metrics import RetentionMetrics
from central.retention import repository as repo
from central.retention.policy import Policies


class _Event(Protocol):
    @property
    def site(self) -> str: ...
    @property
    def ts(self) -> datetime: ...


class _Item(Protocol):
    @property
    def event(self) -> _Event: ...


T = TypeVar("T", bound=_Item)


class EventExpiry:
    def __init__(
        self, metrics: RetentionMetrics, cache_s: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.metrics, self.cache_s, self.clock = metrics, cache_s, clock
        self._policies: Policies | None = None
        self._read_at = float("-inf")

    async def __call__(self, conn: AsyncConnection[Any], accepted: list[T]) -> tuple[list[T], list[T]]:
        """(kept, expired) of `accepted`."""
        now = self.clock()
        if self._policies is None or now - self._read_at > self.cache_s:
            self._policies = await repo.policies(conn)
            self._read_at = now
        policies, moment = self._policies, datetime.fromtimestamp(now, UTC)
        kept: list[T] = []
        expired: list[T] = []
        for item in accepted:
            event = item.event
            (expired if event.ts < policies.event_cutoff(event.site, moment) else kept).append(item)
        if expired:
            self.metrics.refused.inc(len(expired))
        return kept, expired
