"""The backlog drain after an outage, end to end, with receipts: `python -m bench.outage_drain`.

It sits above both sides (it runs edge and central code), so it is not a `facegate bench` command;
`facegate bench ingest` (central/bench_ingest.py) measures central's side alone.

Each simulated edge is its own process running the production edge side (`edge.delivery.outbox.Outbox`,
`edge.delivery.mqtt.EdgeMqttClient`, `edge.delivery.publisher.Publisher`) over an outbox preloaded with N
events, as an edge holds them after central or the link was away. Central's consumer runs in its own
process. The clock runs from the moment the edges connect until every outbox is empty, i.e. until every
event was published, committed in PostgreSQL, acknowledged, receipted and deleted from its outbox.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg

from central.bench_ingest import SITE, consumer_command, private_broker, sample_event, scratch_database
from common.messages import encode
from common.topics import edge_topic


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage_drain", description=__doc__)
    parser.add_argument(
        "--database-url", required=True, help="PostgreSQL server (a scratch database is made)"
    )
    parser.add_argument("--events", type=int, default=10_000, help="events per edge's outbox (default 10000)")
    parser.add_argument("--edges", type=int, default=2, help="simulated edges (default 2)")
    parser.add_argument("--batch", type=int, default=500, help="central's ingest batch size (default 500)")
    parser.add_argument("--broker", default="", help="host:port of a broker (default: start a private one)")
    parser.add_argument(
        "--edge-worker", nargs=3, metavar=("BROKER", "EDGE", "OUTBOX"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.edge_worker:
        return edge_worker(*args.edge_worker)
    with private_broker(args.broker) as broker, scratch_database(args.database_url) as dsn:
        rate = outage_drain(broker, dsn, args.edges, args.events, consumer_command(dsn, args.batch))
    print(f"outage drain: {args.edges} edges x {args.events} events in their outboxes, batch {args.batch}")
    print(f"{'path':<30} {'events/s':>10}")
    print(f"{f'outage drain, {args.edges} edges':<30} {rate:>10.0f}")
    return 0


def outage_drain(broker: str, dsn: str, edges: int, per_edge: int, consumer: list[str]) -> float:
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
                [sys.executable, "-m", "bench.outage_drain", "--edge-worker", broker, name, str(path)],
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


def _fill(path: Path, edge: str, count: int) -> None:
    """Preload an outbox (synchronous=NORMAL only to fill it fast; the drain uses the default FULL)."""
    from edge.delivery.outbox import Outbox, OutboxSettings

    topic = edge_topic(SITE, edge, "events")
    with Outbox(path, OutboxSettings(synchronous="NORMAL")) as outbox:
        for seq in range(count):
            event = sample_event(seq, edge)
            outbox.put(event.id, event.camera, topic, encode(event))


def edge_worker(broker: str, edge: str, outbox_path: str) -> int:
    """One edge: prints "ready", connects on "go", prints "empty" once its outbox is empty."""
    from common.mqtt.settings import MqttSettings
    from edge.delivery.mqtt import EdgeMqttClient
    from edge.delivery.outbox import Outbox
    from edge.delivery.publisher import Publisher

    host, port = broker.rsplit(":", 1)
    with Outbox(outbox_path) as outbox:
        client = EdgeMqttClient(MqttSettings(host=host, port=int(port)), site=SITE, edge=edge)
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


if __name__ == "__main__":
    sys.exit(main())
