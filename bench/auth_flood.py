"""A flood of wrong secrets on a known API key prefix against a real central, side by side with no flood:
what the flood gets back and how fast `/health` answers meanwhile (`python -m bench.auth_flood`).

    python -m bench.auth_flood [--requests 400] [--concurrency 50] [--probe-s 5]

Starts `facegate central serve` (one process) on a scratch database of the local PostgreSQL, a folder
object store and, when it answers, the local Redis, and creates one API key (its prefix is the one the
flood aims at). Three phases, each on a freshly started central:

- flood off: `/health` probed every 20 ms for `--probe-s` seconds;
- flood, limits on (the defaults, FACEGATE_AUTH_FAIL_*): `--requests` GETs of /api/v1/sites with the
  known prefix and a wrong secret, `--concurrency` at a time, while `/health` is probed the same way;
- flood, limits off (FACEGATE_AUTH_FAIL_*_BURST = 10^6: central as it was before the limit, every
  attempt running PBKDF2).

The probe runs in its own thread and connection; latencies are wall-clock per GET. Reported: the
flood's answers by status, its duration, and `/health` p50 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis

from bench.central_rig import central_process, scratch_services
from central.auth.repository import create_key_sync
from central.db import migrate
from common.models.fetch import fetch_models, models_dir

PROBE_EVERY_S = 0.02
LIMITS_OFF = {"FACEGATE_AUTH_FAIL_IP_BURST": "1000000", "FACEGATE_AUTH_FAIL_KEY_BURST": "1000000"}


@dataclass
class Phase:
    name: str
    statuses: Counter[int]
    flood_s: float
    health_ms: list[float]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.health_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Probe:
    """GET /health every PROBE_EVERY_S in a thread until stopped; the latency of each, in ms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60.0) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                client.get("/health").raise_for_status()
                self.latencies.append((time.perf_counter() - start) * 1000)
                self._stop.wait(PROBE_EVERY_S)


async def flood(url: str, credential: str, requests: int, concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:

        async def one() -> None:
            async with gate:
                response = await client.get(
                    "/api/v1/sites", headers={"Authorization": f"Bearer {credential}"}
                )
                statuses[response.status_code] += 1

        await asyncio.gather(*(one() for _ in range(requests)))
    return statuses


def wrong_secret(key: str) -> str:
    """The key's `fg_<prefix>_` with a wrong (well-formed) secret."""
    return key[: len("fg_abcdefgh_")] + "W" * 43


def run_phase(
    name: str, dsn: str, redis_url: str | None, args: argparse.Namespace, env: dict[str, str], *, attack: bool
) -> Phase:
    with ExitStack() as stack:
        storage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-store-")))
        with psycopg.connect(dsn) as conn:
            key = create_key_sync(conn, f"bench {name}", "viewer").display
        url, _ = stack.enter_context(central_process(dsn, redis_url, storage, extra=env))
        if redis_url:
            redis.Redis.from_url(redis_url).flushdb()  # no failures left over from an earlier phase
        start = time.perf_counter()
        with Probe(url) as probe:
            if attack:
                statuses = asyncio.run(flood(url, wrong_secret(key), args.requests, args.concurrency))
            else:
                statuses = Counter()
                time.sleep(args.probe_s)
        return Phase(name, statuses, time.perf_counter() - start, probe.latencies)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth_flood", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests in the flood (default: 400)")
    parser.add_argument("--concurrency", type=int, default=50, help="flood requests in flight (default: 50)")
    parser.add_argument("--probe-s", type=float, default=5.0, help="probe time without a flood (default: 5)")
    args = parser.parse_args()
    fetch_models(models_dir())
    with scratch_services() as (dsn, redis_url):
        migrate(dsn)
        phases = [
            run_phase("flood off", dsn, redis_url, args, {}, attack=False),
            run_phase("flood, limits on", dsn, redis_url, args, {}, attack=True),
            run_phase("flood, limits off (as before)", dsn, redis_url, args, LIMITS_OFF, attack=True),
        ]
    print(
        f"{args.requests} requests with a wrong secret on a known prefix, {args.concurrency} at a time; "
        f"Redis: {'yes' if redis_url else 'no'}"
    )
    print("| phase | flood answers | flood seconds | /health probes | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for phase in phases:
        answers = ", ".join(f"{count}x {status}" for status, count in sorted(phase.statuses.items())) or "-"
        p50, p99, top = statistics.median(phase.health_ms), phase.percentile(0.99), max(phase.health_ms)
        print(
            f"| {phase.name} | {answers} | {phase.flood_s:.2f} | {len(phase.health_ms)} | "
            f"{p50:.1f} | {p99:.1f} | {top:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
