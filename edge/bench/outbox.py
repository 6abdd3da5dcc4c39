"""`facegate bench outbox`: outbox throughput through a broker, side by side with a bare paho publisher.

Both publish the same encoded events at QoS 1 with the same in-flight window to a counting subscriber
on the given broker. The bare publisher keeps nothing (what Frigate does); the outbox commits each
event to SQLite first, publishes it through the publisher, and deletes it on the subscriber's receipts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from common.messages import Event, Receipt, encode
from common.mqtt.settings import MqttSettings
from common.topics import edge_topic
from edge.delivery.mqtt import EdgeMqttClient
from edge.delivery.outbox import Outbox, OutboxSettings
from edge.delivery.publisher import Publisher, PublisherSettings

SITE = "bench"
TIMEOUT_S = 20.0


def register(sub: Any) -> None:
    parser = sub.add_parser("outbox", help="outbox throughput through a broker against a bare paho publisher")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port (default 1883)")
    parser.add_argument("--events", type=int, default=5000, help="events per run (default 5000)")
    parser.add_argument("--batch", type=int, default=100, help="publisher batch and in-flight window")
    modes = ["FULL", "NORMAL"]
    parser.add_argument("--synchronous", nargs="+", choices=modes, default=modes, help="outbox modes (both)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.set_defaults(handler=run)


class _EventId(msgspec.Struct):
    id: str


class Counter:
    """A subscriber that counts events and, when asked, confirms them with batched receipts."""

    def __init__(self, host: str, port: int, topic: str, receipts: str | None) -> None:
        self.count, self.topic, self.receipts = 0, topic, receipts
        self._ids: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-counter-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError(f"no SUBACK from {host}:{port}")

    def _on_message(self, client: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.count += 1
            if self.receipts is not None:
                self._ids.append(msgspec.json.decode(message.payload, type=_EventId).id)
                if len(self._ids) >= 100:
                    self._flush(client)

    def flush(self) -> None:
        with self._lock:
            self._flush(self._client)

    def _flush(self, client: mqtt.Client) -> None:
        if self._ids and self.receipts is not None:
            client.publish(self.receipts, encode(Receipt(event_ids=self._ids)), qos=1)
            self._ids = []

    def close(self, clear_retained: str | None = None) -> None:
        if clear_retained is not None:  # the edge's retained status: leave the broker as it was
            self._client.publish(clear_retained, b"", qos=1, retain=True).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()


def _wait(condition: Any, what: str, counter: Counter, tick: Any = None) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what} ({counter.count} received)")
        if tick is not None:
            tick()
        time.sleep(0.002)
    return time.perf_counter()


def _events(n: int, edge: str) -> list[tuple[str, str, bytes]]:
    out = []
    for i in range(n):
        camera = f"cam{i % 4}"
        person = str(uuid.uuid4())
        event = Event(
            site=SITE,
            edge=edge,
            camera=camera,
            seq=i // 4,
            track_id=i,
            kind="recognized",
            person_id=person,
            score=0.71,
            threshold=0.363,
            quality=0.82,
            bbox=(412.0, 118.0, 96.0, 121.0),
            model="sface-2021dec",
            gallery="main",
            gallery_version=42,
        )
        out.append((event.id, camera, encode(event)))
    return out


def bare_paho(host: str, port: int, payloads: list[bytes], inflight: int) -> dict[str, float]:
    topic = edge_topic(SITE, f"bare-{uuid.uuid4().hex[:8]}", "events")
    counter = Counter(host, port, topic, None)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(inflight)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(host, port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise TimeoutError(f"bench: cannot connect to {host}:{port}")
        start = time.perf_counter()
        for payload in payloads:
            client.publish(topic, payload, qos=1)
        delivered = _wait(lambda: counter.count >= len(payloads), "the bare publisher's events", counter)
    finally:
        client.disconnect()
        client.loop_stop()
        counter.close()
    return {"delivered_s": delivered - start, "events_per_s": len(payloads) / (delivered - start)}


def through_outbox(
    host: str, port: int, events: list[tuple[str, str, bytes]], batch: int, synchronous: str
) -> dict[str, float]:
    edge = f"outbox-{uuid.uuid4().hex[:8]}"
    topic = edge_topic(SITE, edge, "events")
    counter = Counter(host, port, topic, edge_topic(SITE, edge, "receipts"))
    client = EdgeMqttClient(
        MqttSettings(host=host, port=port, max_inflight=batch, clean_start=True), site=SITE, edge=edge
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = OutboxSettings(synchronous="FULL" if synchronous == "FULL" else "NORMAL")
        with Outbox(Path(tmp) / "outbox.db", settings) as outbox:
            publisher = Publisher(outbox, client, PublisherSettings(batch=batch))
            client.start()
            publisher.start()
            try:
                if not client.wait_connected(10):
                    raise TimeoutError(f"bench: cannot connect to {host}:{port}")
                start = time.perf_counter()
                for event_id, camera, payload in events:
                    outbox.put(event_id, camera, topic, payload)
                    publisher.notify()
                written = time.perf_counter()
                delivered = _wait(lambda: counter.count >= len(events), "the outbox's events", counter)
                drained = _wait(lambda: outbox.stats().backlog == 0, "the receipts", counter, counter.flush)
            finally:
                publisher.stop()
                client.stop()
                counter.close(clear_retained=client.status_topic)
    n = len(events)
    write_s, delivered_s = written - start, delivered - start
    figures = {"write_s": write_s, "writes_per_s": n / write_s, "delivered_s": delivered_s}
    return figures | {"events_per_s": n / delivered_s, "drained_s": drained - start}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    events = _events(args.events, "bench")
    payloads = [payload for _, _, payload in events]
    figures: dict[str, Any] = {"events": len(events), "payload_bytes": sum(map(len, payloads)) // len(events)}
    figures["broker"] = f"{args.host}:{args.port}"
    figures["bare_paho"] = bare_paho(args.host, args.port, payloads, args.batch)
    for mode in args.synchronous:
        result = through_outbox(args.host, args.port, events, args.batch, mode)
        result["over_bare"] = result["events_per_s"] / figures["bare_paho"]["events_per_s"]
        figures[f"outbox_{mode.lower()}"] = result
    return figures


def run(args: argparse.Namespace) -> int:
    figures = measure(args)
    if args.json:
        print(msgspec.json.encode(figures).decode())
        return 0
    bare = figures["bare_paho"]
    print(f"{figures['events']} events of {figures['payload_bytes']} bytes, QoS 1, via {figures['broker']}:")
    print(
        f"  bare paho publisher          {bare['events_per_s']:9.0f} events/s  ({bare['delivered_s']:.3f} s)"
    )
    for mode in args.synchronous:
        r = figures[f"outbox_{mode.lower()}"]
        print(
            f"  outbox synchronous={mode:6} {r['events_per_s']:9.0f} events/s  ({r['delivered_s']:.3f} s,"
            f" {r['over_bare']:.2f} x bare; writes {r['writes_per_s']:.0f}/s;"
            f" all confirmed after {r['drained_s']:.3f} s)"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m edge.bench.outbox [options]`: the same as `facegate bench outbox [options]`."""
    parser = argparse.ArgumentParser(prog="facegate bench")
    register(parser.add_subparsers(dest="bench_command", required=True))
    args = parser.parse_args(["outbox", *(sys.argv[1:] if argv is None else argv)])
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
