"""`LiveHub`: this replica's WebSocket clients, each with a bounded queue of frames to send.

Delivery never blocks: a frame goes to every client whose principal may see the event's site and
whose filters match; a client whose queue is full is removed at once, its queue emptied (the memory
is released) and its `dropped` event set, so its handler closes it with code 1013. Runs on the
event loop only (asyncio queues are not thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from central.metrics import LiveMetrics
from central.principal import Principal

log = logging.getLogger("central.live")


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event ready to send: the fields filters need and its encoded frame."""

    site: str
    person_id: str | None
    frame: str


@dataclass(eq=False, slots=True)
class Client:
    """One connected WebSocket: who it is, what it asked for, what waits to be sent to it."""

    principal: Principal
    sites: frozenset[str]
    """Sites asked for with `?site=` (empty: every site the principal may see)."""
    person: str | None
    queue: asyncio.Queue[str]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: LiveEvent) -> bool:
        if not self.principal.allows_site(event.site):
            return False
        if self.sites and event.site not in self.sites:
            return False
        return self.person is None or event.person_id == self.person


class LiveHub:
    """The clients of one replica."""

    def __init__(self, queue_size: int, metrics: LiveMetrics) -> None:
        self.queue_size = queue_size
        self.metrics = metrics
        self.clients: set[Client] = set()

    def add(self, principal: Principal, sites: Iterable[str], person: str | None) -> Client:
        client = Client(principal, frozenset(sites), person, asyncio.Queue(self.queue_size))
        self.clients.add(client)
        self.metrics.clients.set(len(self.clients))
        return client

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        self.metrics.clients.set(len(self.clients))

    def deliver(self, events: Iterable[LiveEvent]) -> None:
        """Queue each event for the clients that want it; drop clients that cannot keep up."""
        for event in events:
            for client in list(self.clients):
                if not client.wants(event):
                    continue
                try:
                    client.queue.put_nowait(event.frame)
                except asyncio.QueueFull:
                    self.drop(client)

    def drop(self, client: Client) -> None:
        """Disconnect a slow client: forget it, free its queue, tell its handler to close."""
        self.remove(client)
        while not client.queue.empty():
            client.queue.get_nowait()
        client.dropped.set()
        self.metrics.dropped.labels("slow").inc()
        log.warning("live_client_dropped", extra={"principal": client.principal.id, "reason": "slow"})


def live_events(payload: bytes) -> list[LiveEvent]:
    """Decode a published batch (a JSON array of event objects) into frames; entries without a site are
    skipped (no site, no access decision). Raises msgspec.DecodeError on a malformed batch."""
    batch = msgspec.json.decode(payload, type=list[dict[str, Any]])
    out = []
    for event in batch:
        site = event.get("site")
        if not isinstance(site, str):
            continue
        person = event.get("person_id")
        frame = msgspec.json.encode({"type": "event", "event": event}).decode()
        out.append(LiveEvent(site, person if isinstance(person, str) else None, frame))
    return out
