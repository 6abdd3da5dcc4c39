"""A test consumer that stands in for central: it receives events and sends receipts."""

from __future__ import annotations

import queue
import threading
from collections import defaultdict

from common.messages import Event, Receipt, decode, encode
from common.topics import edge_topic
from devtools.services.endpoints import MqttBroker
from devtools.services.mqtt import MqttTestClient


class CentralStandIn:
    """Subscribes to every edge's events at QoS 1 with a persistent session, records them (duplicates
    included) and confirms each with a receipt on the edge's receipts topic."""

    def __init__(self, broker: MqttBroker, client_id: str = "central-standin", receipts: bool = True) -> None:
        self.client = MqttTestClient(broker, client_id, clean_session=False)
        self.receipts = receipts
        self.received: list[Event] = []
        self.redelivered: set[str] = set()  # ids whose first arrival was a broker redelivery (DUP)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CentralStandIn:
        self.client.__enter__()
        self.client.subscribe("facegate/v1/+/+/events", qos=1)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.__exit__(None, None, None)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.client.next_message(timeout=0.1)
            except queue.Empty:
                continue
            event = decode(message.payload, Event)
            with self._lock:
                if message.dup and event.id not in {e.id for e in self.received}:
                    self.redelivered.add(event.id)
                self.received.append(event)
            if self.receipts:
                self.client.publish(
                    edge_topic(event.site, event.edge, "receipts"),
                    encode(Receipt(event_ids=[event.id])),
                    qos=1,
                )

    def events(self) -> list[Event]:
        """Received events, deduplicated by id, in arrival order."""
        with self._lock:
            seen: dict[str, Event] = {}
            for event in self.received:
                seen.setdefault(event.id, event)
            return list(seen.values())

    def in_order_per_camera(self) -> bool:
        """Events arrived in each camera's order; a broker redelivery after a restart (DUP) had its
        place before the outage and does not count (see tests/integration/edge/test_delivery.py)."""
        by_camera: dict[str, list[int]] = defaultdict(list)
        for event in self.events():
            if event.id not in self.redelivered:
                by_camera[event.camera].append(event.seq)
        return all(seqs == sorted(seqs) for seqs in by_camera.values())
