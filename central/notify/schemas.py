"""Response types of the delivery log, `/api/v1/deliveries` (docs/notifications.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

DeliveryStatus = Literal["pending", "sent", "dead"]


class DeliveryRead(msgspec.Struct, frozen=True):
    """One delivery of a rule's match on one channel. `id` is the `webhook-id` receivers dedup on."""

    id: UUID
    rule_id: UUID
    channel: str
    event_id: UUID
    event_ts: datetime
    site: str
    status: str
    """pending (waiting for its first send or a retry), sent, or dead (retries used up)."""
    attempts: int
    last_error: str | None
    next_at: datetime
    created_at: datetime
    sent_at: datetime | None


class AttemptRead(msgspec.Struct, frozen=True):
    at: datetime
    outcome: str
    """sent, failed (retried later) or dead."""
    reason: str | None
    duration_ms: int


class DeliveryDetail(msgspec.Struct, frozen=True):
    delivery: DeliveryRead
    attempts: list[AttemptRead]


class DeliveryPage(msgspec.Struct, frozen=True):
    items: list[DeliveryRead]
    next: str | None = None
