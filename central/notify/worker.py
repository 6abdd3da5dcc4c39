"""The delivery worker: every replica runs one; each pass claims due deliveries FOR UPDATE SKIP LOCKED
(so replicas never send the same row at once), sends them concurrently, and records each attempt in the
same transaction before it commits.

Guarantee: at least once. A row leaves `pending` only in the transaction that records its successful
send, so a crash (SIGKILL) before that commit leaves it pending and another pass, here or on another
replica, sends it again with the same delivery id (receivers dedup on `webhook-id`). A failed attempt
is retried after FACEGATE_NOTIFY_RETRY_S[attempt] seconds; when the list is used up the delivery is
`dead` (the delivery log keeps every attempt and its reason; `POST /deliveries/{id}/retry` requeues).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import msgspec

from central.db.pool import AsyncPool
from central.metrics import NotifyMetrics
from central.notify import repository as repo
from central.notify.email import EmailSender
from central.notify.repository import Due
from central.notify.webhook import WebhookSender
from central.storage import ObjectStore
from central.watch.repository import MQTT_TOPIC
from common.mqtt.aio import AsyncMqttClient

log = logging.getLogger("central.notify")
GAUGE_EVERY_S = 5.0
"""The backlog gauges are read at most this often while deliveries flow (and after every idle pass)."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    poll_s: float
    batch: int
    retry_s: tuple[float, ...]
    link_ttl_s: int


def next_step(attempts_before: int, retry_s: Sequence[float]) -> tuple[str, float | None]:
    """After a failed attempt (the `attempts_before + 1`-th): `failed` with the wait before the next,
    or `dead` when every wait of `retry_s` has been used."""
    if attempts_before < len(retry_s):
        return "failed", retry_s[attempts_before]
    return "dead", None


class DeliveryWorker:
    def __init__(  # noqa: PLR0917  # its dependencies, wired by central/lifespan.py
        self,
        pool: AsyncPool,
        store: ObjectStore,
        webhooks: WebhookSender,
        email: EmailSender,
        mqtt: AsyncMqttClient | None,
        metrics: NotifyMetrics,
        settings: WorkerSettings,
    ) -> None:
        self.pool, self.store, self.webhooks, self.email, self.mqtt = pool, store, webhooks, email, mqtt
        self.metrics, self.settings = metrics, settings
        self._wake = asyncio.Event()
        self._gauged = float("-inf")

    def wake(self) -> None:
        """Look for due deliveries now (ingest calls it after a commit that wrote some)."""
        self._wake.set()

    async def run_forever(self) -> None:
        try:
            while True:
                self._wake.clear()  # a wake during the pass below is kept for the wait after it
                try:
                    claimed = await self.run_once()
                except Exception:  # the top of a worker loop: log, count, keep going
                    log.exception("notify_pass_failed")
                    claimed = 0
                if claimed < self.settings.batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
        finally:
            await self.webhooks.close()

    async def run_once(self) -> int:
        """One pass: claim, send, record; returns how many deliveries it claimed."""
        async with self.pool.connection() as conn:
            due = await repo.claim_due(conn, self.settings.batch)
            results = await asyncio.gather(*(self._attempt(d) for d in due))
            attempts = []
            for delivery, (reason, took_ms) in zip(due, results, strict=True):
                outcome, retry_in = (
                    ("sent", None) if reason is None else next_step(delivery.attempts, self.settings.retry_s)
                )
                attempts.append(repo.Attempt(delivery.id, outcome, reason, took_ms, retry_in))
                self.metrics.attempts.labels(delivery.channel, outcome).inc()
                if outcome != "sent":
                    log.warning(
                        "notify_delivery_failed",
                        extra={
                            "delivery": str(delivery.id),
                            "channel": delivery.channel,
                            "outcome": outcome,
                            "attempt": delivery.attempts + 1,
                            "reason": reason,
                        },
                    )
            await repo.record_attempts(conn, attempts)
            if time.monotonic() - self._gauged >= GAUGE_EVERY_S or not due:
                pending, oldest = await repo.backlog(conn)
                self.metrics.pending.set(pending)
                self.metrics.oldest_pending.set(oldest)
                self._gauged = time.monotonic()
        return len(due)

    async def _attempt(self, delivery: Due) -> tuple[str | None, int]:
        started = time.monotonic()
        try:
            reason = await self._send(delivery)
        except Exception as err:  # one delivery's unexpected error is that delivery's failure
            log.exception("notify_send_error", extra={"delivery": str(delivery.id)})
            reason = f"internal error: {type(err).__name__}"
        took = int((time.monotonic() - started) * 1000)
        if reason is None:
            created = delivery.payload.get("created_at")
            if isinstance(created, float):
                self.metrics.latency.labels(delivery.channel).observe(max(0.0, time.time() - created))
        return reason, took

    async def _send(self, delivery: Due) -> str | None:
        body = await self._body(delivery)
        if delivery.channel == "webhook":
            if delivery.webhook_url is None or delivery.webhook_secret is None:
                return "the rule has no webhook any more"
            return await self.webhooks.send(
                delivery.webhook_url, delivery.webhook_secret, str(delivery.id), msgspec.json.encode(body)
            )
        if delivery.channel == "email":
            if not delivery.email_to:
                return "the rule has no e-mail addresses any more"
            subject, text = _mail(body)
            return await self.email.send(delivery.email_to, subject, text, str(delivery.id))
        if self.mqtt is None:
            return "central has no MQTT connection (FACEGATE_MQTT_URL)"
        if not delivery.mqtt:
            return "the rule no longer publishes on MQTT"
        try:
            await self.mqtt.publish(MQTT_TOPIC.format(rule=delivery.rule_id), msgspec.json.encode(body))
        except (OSError, TimeoutError, ConnectionError) as err:
            return f"MQTT publish failed: {type(err).__name__}"
        return None

    async def _body(self, delivery: Due) -> dict[str, Any]:
        """The JSON every channel sends: type, delivery id, rule, event, and a crop link that expires."""
        payload = delivery.payload
        crop_url, expires = None, None
        key = payload.get("crop_key")
        if isinstance(key, str):
            ttl = self.settings.link_ttl_s
            crop_url = await anyio.to_thread.run_sync(self.store.presigned_get, key, ttl)
            expires = datetime.fromtimestamp(time.time() + ttl, UTC).isoformat()
        return {
            "type": "facegate.watch.match",
            "delivery_id": str(delivery.id),
            "rule": payload["rule"],
            "event": payload["event"],
            "crop_url": crop_url,
            "crop_url_expires_at": expires,
        }


def _mail(body: dict[str, Any]) -> tuple[str, str]:
    event, rule = body["event"], body["rule"]
    who = event.get("person_name") or (
        "an unknown face" if event.get("person_id") is None else "a watched person"
    )
    subject = f"[facegate] {rule['name']}: {who} at {event['site']}/{event['camera']}"
    lines = [
        f"Rule: {rule['name']}",
        f"Who: {who} (person {event.get('person_id') or 'unknown'}, score {event['score']})",
        f"Where: site {event['site']}, edge {event['edge']}, camera {event['camera']}",
        f"When: {event['ts']}",
        f"Event: {event['id']}",
    ]
    if body.get("crop_url"):
        lines.append(f"Face crop (link valid until {body['crop_url_expires_at']}): {body['crop_url']}")
    return subject[:250], "\n".join(lines) + "\n"
