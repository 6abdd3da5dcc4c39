"""`facegate bench ingest --outage-events N`: the backlog drain after an outage, end to end, with receipts.

Each simulated edge is its own process running the production edge side (`edge.outbox.Outbox`,
`edge.mqtt.MqttClient`, `edge.publisher.Publisher`) over an outbox preloaded with N events, as an edge
holds them after central or the link was away. Central's consumer runs in its own process. The clock
runs from the moment the edges connect until every outbox is empty, i.e. until every event was
published, committed in PostgreSQL, acknowledged, receipted and deleted from its outbox.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from common.messages import Event, encode
from common.topics import edge_topic

SITE = "bench"


def outage_drain(  # noqa: PLR0917  # the benchmark's knobs
    broker: str, dsn: str, batch: int, edges: int, per_edge: int, consumer: list[str]
) -> float:
    """Events/s from the edges' connect until every outbox is empty. `consumer` is the command line of
    one ingest worker (without its --worker arguments)."""
    names = [f"outage{i}" for i in range(edges)]
    with psycopg.connect(dsn) as conn:
        for name in names:
            conn.execute("INSERT INTO edges (site_id, id) VALUES (%s, %s)", (SITE, name))
    client_id, group = f"bench-outage-{uuid.uuid4().hex[:6]}", f"outage-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        outboxes = [Path(tmp) / f"{name}.db" for name in names]
        for name, path in zip(names, outboxes, strict=True):
            _fill(path, name, per_edge)
        central = subprocess.Popen(
            [*consumer, "--worker", broker, client_id, group],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        workers = [
            subprocess.Popen(
                [*consumer, "--edge-worker", broker, name, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name, path in zip(names, outboxes, strict=True)
        ]
        try:
            for process in [central, *workers]:
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            _send(central, "go")
            time.sleep(1.0)  # central's consumer is connected and subscribed
            start = time.perf_counter()
            for worker in workers:
                _send(worker, "go")
            for worker in workers:
                assert worker.stdout is not None and worker.stdout.readline().strip() == "empty"
            elapsed = time.perf_counter() - start
        finally:
            for process in [*workers, central]:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(30)
    with psycopg.connect(dsn) as conn:
        stored = (
            conn.execute("SELECT count(*) FROM events WHERE edge_id LIKE 'outage%'").fetchone() or (0,)
        )[0]
    if stored != edges * per_edge:
        raise AssertionError(f"outage drain: {stored} events stored, expected {edges * per_edge}")
    return edges * per_edge / elapsed


def _send(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def sample_event(seq: int, edge: str) -> Event:
    """The unknown-face event both ingest benchmarks publish (site `bench`, camera `cam1`)."""
    return Event(
        site=SITE,
        edge=edge,
        camera="cam1",
        seq=seq,
        track_id=seq,
        kind="unknown",
        person_id=None,
        score=0.2,
        threshold=0.36,
        quality=0.8,
        bbox=(10.0, 20.0, 64.0, 80.0),
        model="sface-2021dec",
    )


def _fill(path: Path, edge: str, count: int) -> None:
    """Preload an outbox (synchronous=NORMAL only to fill it fast; the drain uses the default FULL)."""
    from edge.outbox import Outbox, OutboxSettings

    topic = edge_topic(SITE, edge, "events")
    with Outbox(path, OutboxSettings(synchronous="NORMAL")) as outbox:
        for seq in range(count):
            event = sample_event(seq, edge)
            outbox.put(event.id, event.camera, topic, encode(event))


def edge_worker(broker: str, edge: str, outbox_path: str) -> int:
    """One edge: prints "ready", connects on "go", prints "empty" once its outbox is empty."""
    from edge.mqtt import MqttClient, MqttSettings
    from edge.outbox import Outbox
    from edge.publisher import Publisher

    host, port = broker.rsplit(":", 1)
    with Outbox(outbox_path) as outbox:
        client = MqttClient(MqttSettings(host=host, port=int(port)), site=SITE, edge=edge)
        publisher = Publisher(outbox, client)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        client.start()
        publisher.start()
        try:
            while outbox.stats().backlog:
                time.sleep(0.01)
            sys.stdout.write("empty\n")
            sys.stdout.flush()
            sys.stdin.read()
        finally:
            publisher.stop()
            client.stop()
    return 0
