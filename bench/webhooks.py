"""Webhook throughput: central's delivery worker against a bare HTTP client posting the same bodies:
`python -m bench.webhooks [--deliveries N] [--batch B] [--database-url URL]`.

A receiver (uvicorn, a minimal ASGI app answering 200) runs in its own process on 127.0.0.1. Side A:
N pending deliveries of one rule in a scratch database, drained by one `DeliveryWorker` (what each
replica runs): per pass it claims B rows FOR UPDATE SKIP LOCKED, builds each body, signs it, checks the
target (SSRF policy), POSTs them concurrently, records every attempt and commits. Side B: an
`httpx.AsyncClient` posting the same N bodies, B at a time, and nothing else. Prints deliveries/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
from psycopg import sql

from central.db import migrate
from central.db.pool import open_async_pool
from central.metrics import Metrics
from central.notify.email import EmailSender, SmtpSettings
from central.notify.targets import TargetPolicy
from central.notify.webhook import WebhookSender, WebhookSettings
from central.notify.worker import DeliveryWorker, WorkerSettings
from central.storage import FileSettings, FileStore
from central.watch.service import new_secret
from devtools.services.ports import free_port

PAYLOAD = {
    "rule": {"id": "r", "name": "bench"},
    "event": {"id": "e", "ts": "2026-12-07T00:00:00+00:00", "site": "s1", "edge": "e1", "camera": "door",
              "kind": "recognized", "person_id": None, "person_name": "Ada", "score": 0.8, "track_id": 1},
}  # fmt: skip


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.webhooks:receiver_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
    )
    url = f"http://127.0.0.1:{port}/hook"
    for _ in range(100):
        try:
            httpx.post(url, content=b"{}", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the receiver did not start")


def queue(dsn: str, url: str, count: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO watch_rules (name, unknown, webhook_url, webhook_secret)"
            " VALUES ('bench', true, %s, %s) RETURNING id",
            (url, new_secret()),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO deliveries (rule_id, channel, event_id, event_ts, site_id, payload)"
            " SELECT %s, 'webhook', gen_random_uuid(), now(), 's1', %s FROM generate_series(1, %s)",
            (row[0], psycopg.types.json.Jsonb(PAYLOAD), count),
        )


async def worker_side(dsn: str, batch: int, store_dir: str) -> float:
    pool = await open_async_pool(dsn, 1, 2)
    metrics = Metrics()
    store = FileStore(FileSettings(Path(store_dir), "x" * 32))
    webhooks = WebhookSender(TargetPolicy(["127.0.0.0/8"]), WebhookSettings(5.0, 65536))
    email = EmailSender(SmtpSettings(None, 25, None, None, "f@localhost", False, 5.0))
    rules = WorkerSettings(0.1, batch, (1.0,), 300)
    worker = DeliveryWorker(pool, store, webhooks, email, None, metrics.notify, rules)
    try:
        started, total = time.perf_counter(), 0
        while claimed := await worker.run_once():
            total += claimed
        took = time.perf_counter() - started
    finally:
        await webhooks.close()
        await pool.close()
    return total / took


async def bare_side(url: str, count: int, batch: int) -> float:
    body = msgspec.json.encode({"type": "facegate.watch.match", "delivery_id": str(uuid.uuid4()), **PAYLOAD})
    async with httpx.AsyncClient(timeout=5.0) as client:
        started = time.perf_counter()
        for first in range(0, count, batch):
            replies = await asyncio.gather(
                *(client.post(url, content=body, headers={"Content-Type": "application/json"})
                  for _ in range(min(batch, count - first)))
            )  # fmt: skip
            assert all(r.status_code == 200 for r in replies)
        return count / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=20, help="deliveries per pass (FACEGATE_NOTIFY_BATCH)")
    parser.add_argument(
        "--database-url", default=os.environ.get("FACEGATE_DATABASE_URL", "postgresql:///postgres")
    )
    args = parser.parse_args(argv)
    name = f"facegate_bench_{uuid.uuid4().hex[:8]}"
    proc, url = start_receiver()
    try:
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                dsn = psycopg.conninfo.make_conninfo(args.database_url, dbname=name)
                migrate(dsn)
                queue(dsn, url, args.deliveries)
                with tempfile.TemporaryDirectory() as store_dir:
                    worker = asyncio.run(worker_side(dsn, args.batch, store_dir))
                bare = asyncio.run(bare_side(url, args.deliveries, args.batch))
            finally:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"{args.deliveries} webhooks to a local receiver, {args.batch} at a time")
    print(f"{'path':<52} {'per second':>10}")
    print(f"{'delivery worker (claim, sign, SSRF check, POST, record)':<52} {worker:>10.0f}")
    print(f"{'bare httpx.AsyncClient (POST only)':<52} {bare:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
