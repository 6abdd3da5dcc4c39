"""`facegate bench ingest`: how fast central drains a backlog of events, against its two limits.

A backlog of N events is preloaded into a persistent session (the session is made once, then the events
are published while it is away), so publishing never competes with draining. Measured in one run:

- `bare`: a paho subscriber draining the backlog and only counting (auto acknowledgement);
- `copy`: COPY of the same rows into a scratch database (no broker);
- `ingest`: central's consumer (decode, validate, batch insert, manual acks, receipts);
- `ingest x2`: two consumer processes on the shared subscription, each with its own session.

The end-to-end drain of edges' outboxes after an outage runs edge code too, so it lives above both
sides: `python -m bench.outage_drain` (bench/outage_drain.py), which uses this module's consumer worker.

A private Mosquitto is started (in-memory, unlimited queues) unless --broker is given; the scratch database
is created on the server of --database-url and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.ingest.validate import IngestEvent
from common.messages import Event, encode

SITE = "bench"
EDGES = 4
FILTER = "facegate/v1/+/+/events"
GROUP = "central"
TIMEOUT_S = 300.0


def register(sub: Any) -> None:
    parser = sub.add_parser("ingest", help="central's ingest rate against a bare subscriber and COPY")
    parser.add_argument(
        "--database-url", required=True, help="PostgreSQL server (a scratch database is made)"
    )
    parser.add_argument("--events", type=int, default=20_000, help="backlog size (default 20000)")
    parser.add_argument("--batch", type=int, default=500, help="ingest batch size (default 500)")
    parser.add_argument("--broker", default="", help="host:port of a broker (default: start a private one)")
    parser.add_argument("--worker", nargs=3, metavar=("BROKER", "CLIENT_ID", "GROUP"), help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        broker, client_id, group = args.worker
        return asyncio.run(_worker(args.database_url, broker, client_id, group, args.batch))
    with private_broker(args.broker) as broker, scratch_database(args.database_url) as dsn:
        payloads = [encode(sample_event(i, f"edge{i % EDGES}")) for i in range(args.events)]
        rates = {
            "bare subscriber": _bare(broker, payloads),
            "COPY": _copy(dsn, payloads),
            "ingest": _ingest_processes(broker, dsn, payloads, args.batch, 1),
            "ingest, 2 consumers": _ingest_processes(broker, dsn, payloads, args.batch, 2),
        }
    bare = rates["bare subscriber"]
    out = sys.stdout.write
    out(f"backlog: {args.events} events, batch {args.batch}, broker {broker}\n")
    out(f"{'path':<30} {'events/s':>10} {'vs bare':>8}\n")
    for name, rate in rates.items():
        out(f"{name:<30} {rate:>10.0f} {rate / bare:>8.2f}\n")
    return 0


@contextmanager
def private_broker(given: str) -> Iterator[str]:
    if given:
        yield given
        return
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto is not installed: install it or pass --broker host:port")
    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        conf = Path(tmp) / "mosquitto.conf"
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            *(["user root"] if os.geteuid() == 0 else []),
        ]
        conf.write_text("\n".join(lines) + "\n")
        process = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            _wait_port(port)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    from central.db import migrate

    name = f"facegate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        dsn = psycopg.conninfo.make_conninfo(url, dbname=name)
        try:
            migrate(dsn)
            with psycopg.connect(dsn) as conn:
                conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s)", (SITE, SITE))
                for i in range(EDGES):
                    conn.execute("INSERT INTO edges (site_id, id) VALUES (%s, %s)", (SITE, f"edge{i}"))
            yield dsn
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _client(client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
    )


def _connect(client: mqtt.Client, broker: str) -> None:
    host, port = broker.rsplit(":", 1)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 1000
    client.connect(host, int(port), clean_start=False, properties=properties)


def _make_session(broker: str, client_id: str, topic_filter: str) -> None:
    """Connect once, subscribe at QoS 1, disconnect: the broker keeps the session and queues for it."""
    client = _client(client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    _connect(client, broker)
    client.loop_start()
    client.subscribe(topic_filter, qos=1)
    if not subscribed.wait(10):
        raise TimeoutError("no SUBACK")
    client.disconnect()
    client.loop_stop()


def _publish(broker: str, payloads: list[bytes]) -> None:
    client = _client(f"bench-publisher-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    _connect(client, broker)
    client.loop_start()
    infos = [
        client.publish(f"facegate/v1/{SITE}/edge{i % EDGES}/events", p, qos=1) for i, p in enumerate(payloads)
    ]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def _bare(broker: str, payloads: list[bytes]) -> float:
    client_id = f"bench-bare-{uuid.uuid4().hex[:6]}"
    _make_session(broker, client_id, FILTER)
    _publish(broker, payloads)
    done, count = threading.Event(), [0]

    def on_message(*_: object) -> None:
        count[0] += 1
        if count[0] == len(payloads):
            done.set()

    client = _client(client_id)
    client.on_message = on_message
    start = time.perf_counter()
    _connect(client, broker)
    client.loop_start()
    if not done.wait(300):
        raise TimeoutError(f"bare subscriber got {count[0]} of {len(payloads)}")
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return len(payloads) / elapsed


def _copy(dsn: str, payloads: list[bytes]) -> float:
    from central.events.repository import EventRow, copy_events

    events = [msgspec.json.decode(p, type=IngestEvent) for p in payloads]
    rows = [
        EventRow(
            id=e.id, ts=e.ts, site_id=e.site, edge_id=e.edge, camera=e.camera, track_id=e.track_id,
            kind=e.kind, person_id=e.person_id, score=e.score, threshold=e.threshold, quality=e.quality,
            bbox=e.bbox, model_id=e.model, seq=e.seq,
        )
        for e in events
    ]  # fmt: skip

    async def copy() -> float:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            start = time.perf_counter()
            await copy_events(conn, rows)
            await conn.commit()
            elapsed = time.perf_counter() - start
            await conn.execute("TRUNCATE events, event_ids")
            await conn.commit()
        return len(rows) / elapsed

    return asyncio.run(copy())


def _ingest_processes(broker: str, dsn: str, payloads: list[bytes], batch: int, consumers: int) -> float:
    ids = [f"bench-ingest-{uuid.uuid4().hex[:6]}" for _ in range(consumers)]
    group = f"{GROUP}-{uuid.uuid4().hex[:6]}"  # sessions of an earlier run must not share the backlog
    for client_id in ids:
        _make_session(broker, client_id, f"$share/{group}/{FILTER}")
    _publish(broker, payloads)
    command = consumer_command(dsn, batch)
    workers = [
        subprocess.Popen(
            [*command, "--worker", broker, cid, group],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for cid in ids
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        with psycopg.connect(dsn, autocommit=True) as conn:
            while _count(conn) < len(payloads):
                if time.perf_counter() - start > TIMEOUT_S:
                    raise TimeoutError(f"ingest did not drain the backlog in 300 s: {_count(conn)} stored")
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            conn.execute("TRUNCATE events, event_ids")
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
            worker.wait(30)
    return len(payloads) / elapsed


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


def consumer_command(dsn: str, batch: int) -> list[str]:
    """The command line of a consumer process (`--worker BROKER CLIENT_ID GROUP` follows)."""
    return [sys.executable, "-m", "common", "bench", "ingest", "--database-url", dsn, "--batch", str(batch)]


def _count(conn: psycopg.Connection[Any]) -> int:
    return int((conn.execute("SELECT count(*) FROM event_ids").fetchone() or (0,))[0])


async def _worker(dsn: str, broker: str, client_id: str, group: str, batch: int) -> int:
    """One consumer process: prints "ready", starts on "go", stops when stdin closes."""
    from central.db import open_async_pool
    from central.ingest.consumer import Ingest, IngestSettings
    from central.metrics import Metrics
    from central.storage import FileSettings, FileStore
    from common.mqtt.aio import AsyncMqttClient
    from common.mqtt.settings import MqttSettings

    host, port = broker.rsplit(":", 1)
    options = MqttSettings(
        host=host,
        port=int(port),
        client_id=client_id,
        protocol="5",
        session_expiry_s=3600,
        receive_maximum=1000,
        manual_ack=True,
        shared_group=group,
    )
    pool = await open_async_pool(dsn, 2, 4)
    with tempfile.TemporaryDirectory() as tmp:
        store = FileStore(FileSettings(root=Path(tmp), secret_key="bench-" * 8))
        client = AsyncMqttClient(options)
        ingest = Ingest(client, pool, store, Metrics(), IngestSettings(batch_size=batch))
        ingest.start()
        loop = asyncio.get_running_loop()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await loop.run_in_executor(None, sys.stdin.readline)
        await client.start()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        await ingest.stop()
        await client.stop()
    await pool.close()
    return 0
