"""The publisher: moves outbox rows to the broker and confirms them on central's receipts.

One worker thread, while connected: take `next_batch` (pending rows and sent rows due for a resend, in
insertion order), publish each at QoS 1 in that order on the one connection, wait for the PUBACKs and
mark the acknowledged rows sent. A row whose publish failed stays pending and goes out again in order.
After every (re)connect all sent, unconfirmed rows are made due at once: the broker may have lost them
(a crash before it saved them) and resending them before anything newer keeps each camera's order.

Receipts (`facegate/v1/{site}/{edge}/receipts`) arrive on the MQTT thread; their ids are queued and
confirmed (deleted) by the worker, so no SQLite write ever blocks the network loop. A receipt's
`rejected` entries (facegate.receipt/1.1) are events central refused for good (dead-lettered): they are
deleted the same way, counted per reason (`rejected`, and `on_rejected` for the daemon's metric
facegate_edge_events_rejected_total) and logged; resending them could never succeed.

Start the client, then the publisher; stop the publisher (it finishes its batch), then the client.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from common.messages import Heartbeat, Receipt, RejectedEvent, decode, encode
from common.mqtt.delivery import Delivery
from common.mqtt.errors import MqttError
from common.mqtt.incoming import Incoming
from common.topics import edge_topic
from edge.delivery.mqtt import EdgeMqttClient
from edge.delivery.outbox import Outbox, OutboxRow

log = logging.getLogger(__name__)
REJECT_REASONS = frozenset({"malformed", "topic_mismatch"})
"""Reasons counted by name; any other a newer central sends is counted as `other`."""


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    batch: int = 100  # rows published before waiting for their PUBACKs
    ack_timeout_s: float = 10.0  # unacknowledged rows after this stay pending and go out again
    idle_s: float = 0.05  # poll interval when the outbox is empty (notify() wakes it at once)


class Publisher:
    """start() subscribes to the receipts and starts the worker; stop() joins it. Counters are plain ints."""

    def __init__(
        self,
        outbox: Outbox,
        client: EdgeMqttClient,
        settings: PublisherSettings | None = None,
        on_rejected: Callable[[str, int], None] | None = None,
    ) -> None:
        self.outbox, self.client = outbox, client
        self.settings = settings or PublisherSettings()
        self.on_rejected = on_rejected
        self.receipts_topic = edge_topic(client.site, client.edge, "receipts")
        self.published = self.acknowledged = self.confirmed = self.errors = 0
        self.rejected: dict[str, int] = {}
        """Events central refused for good and the outbox deleted, per reason (cumulative)."""
        self._receipts: queue.SimpleQueue[Receipt] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._generation = 0
        self._thread = threading.Thread(target=self._run, name=f"publisher-{client.edge}", daemon=True)

    def start(self) -> None:
        self.client.subscribe(self.receipts_topic, self._on_receipt, qos=1)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in flight (marking what was acknowledged), apply queued receipts, join."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def notify(self) -> None:
        """A row was put: publish without waiting for the next poll."""
        self._wake.set()

    def _on_receipt(self, message: Incoming) -> None:
        self._receipts.put(decode(message.payload, Receipt))  # a MessageError is counted by the client
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:
                self.errors += 1
                log.exception("publisher_step_failed", extra={"edge": self.client.edge})
                self._stop.wait(1.0)
        self._apply_receipts()

    def _step(self) -> None:
        self._apply_receipts()
        if not self.client.connected:
            self._sleep(0.1)
            return
        generation = self.client.generation
        if generation != self._generation:
            self._generation = generation
            due = self.outbox.resend_all()
            log.info("publisher_connected", extra={"edge": self.client.edge, "unconfirmed": due})
        rows = self.outbox.next_batch(self.settings.batch)
        if not rows:
            self._sleep(self.settings.idle_s)
            return
        acked = self._publish(rows)
        self.outbox.mark_sent(acked)
        self.acknowledged += len(acked)

    def _publish(self, rows: list[OutboxRow]) -> list[str]:
        """Publish in order; stop at the first refusal (the rest stay pending); ids acknowledged in time."""
        sent: list[tuple[str, Delivery]] = []
        for row in rows:
            try:
                sent.append((row.id, self.client.publish(row.topic, row.payload, qos=1)))
            except MqttError:  # not connected, or paho's queue is full: the rest stay pending
                break
        self.published += len(sent)
        deadline = time.monotonic() + self.settings.ack_timeout_s
        return [row_id for row_id, delivery in sent if delivery.wait(max(0.0, deadline - time.monotonic()))]

    def _apply_receipts(self) -> None:
        ids: list[str] = []
        rejected: list[RejectedEvent] = []
        while True:
            try:
                receipt = self._receipts.get_nowait()
            except queue.Empty:
                break
            ids += receipt.event_ids
            rejected += receipt.rejected
        if ids:
            self.confirmed += self.outbox.confirm(ids)
        if rejected:
            self._reject(rejected)

    def _reject(self, rejected: list[RejectedEvent]) -> None:
        """Delete the events central refused for good; count those that were still in the outbox."""
        per_reason: dict[str, list[str]] = {}
        for item in rejected:
            reason = item.reason if item.reason in REJECT_REASONS else "other"
            per_reason.setdefault(reason, []).append(item.id)
        for reason, ids in per_reason.items():
            deleted = self.outbox.confirm(ids)
            if not deleted:
                continue
            self.rejected[reason] = self.rejected.get(reason, 0) + deleted
            if self.on_rejected is not None:
                self.on_rejected(reason, deleted)
            log.warning(
                "outbox_events_rejected",
                extra={"edge": self.client.edge, "reason": reason, "events": deleted, "first": ids[0]},
            )

    def _sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()


class Heartbeats:
    """Publishes `stats()` (a Heartbeat) at QoS 0 every `every_s` seconds while connected."""

    def __init__(self, client: EdgeMqttClient, every_s: float, stats: Callable[[], Heartbeat]) -> None:
        self.client, self.every_s, self.stats = client, every_s, stats
        self.topic = edge_topic(client.site, client.edge, "heartbeat")
        self.sent = self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeats-{client.edge}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._beat()
            except Exception:
                self.errors += 1
                log.exception("heartbeat_failed", extra={"edge": self.client.edge})

    def _beat(self) -> None:
        if not self.client.connected:
            return
        try:
            self.client.publish(self.topic, encode(self.stats()), qos=0)
        except MqttError:  # disconnected meanwhile, or paho's queue is full: skip this beat
            return
        self.sent += 1
