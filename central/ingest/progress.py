"""Whether ingest is moving: messages received and not yet acknowledged, and the time of the last
progress. Stalled: messages have waited `stall_s` with no batch acknowledged meanwhile (PostgreSQL or
object storage down, or a fault that keeps a batch from completing). Shown by `GET /ready/ingest` (503),
the gauges `facegate_ingest_waiting_messages` / `facegate_ingest_stalled_seconds` and the alert
`FacegateIngestStalled` (deploy/prometheus/alerts.yml).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Progress:
    """Updated on the event loop only (the consumer's message handler and batches)."""

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self.waiting = 0
        """Messages received and not yet acknowledged (queued or in a batch being stored)."""
        self._clock = clock
        self._since = clock()  # the last acknowledged batch, or when messages began waiting

    def received(self) -> None:
        if self.waiting == 0:
            self._since = self._clock()
        self.waiting += 1

    def done(self, count: int) -> None:
        """A batch of `count` messages was acknowledged."""
        self.waiting = max(0, self.waiting - count)
        self._since = self._clock()

    def stalled_for(self) -> float:
        """Seconds messages have waited with no batch acknowledged; 0 when none waits."""
        return 0.0 if self.waiting == 0 else max(0.0, self._clock() - self._since)

    @property
    def stalled(self) -> bool:
        return self.stalled_for() >= self.stall_s

    def health(self) -> dict[str, Any]:
        """What `GET /ready/ingest` answers."""
        stalled_for = self.stalled_for()
        return {
            "stalled": stalled_for >= self.stall_s,
            "waiting_messages": self.waiting,
            "stalled_seconds": round(stalled_for, 1),
            "stall_after_seconds": self.stall_s,
        }
