"""The console at scale: server time of each page, and ingest to screen in Chromium.

    .venv/bin/python -m bench.console [--events 1000000] [--people 10000] [--runs 30] [--live 30]
        [--database-url postgresql:///postgres] [--mqtt-url mqtt://127.0.0.1:1883]

A scratch database on FACEGATE_DATABASE_URL's server gets central's migrations, 20 sites of 5 edges,
`--people` people and `--events` events spread over a year (bench/central_events.py's generator);
central serves it under uvicorn (objects in a temporary folder, the broker of `--mqtt-url` for ingest).

- Pages: each console page is fetched `--runs` times (after one warm-up) by a signed-in client on the
  same machine; the figure is the time to the whole answer on loopback, so it bounds central's time.
- Ingest to screen: Chromium (Debian's, /usr/bin/chromium) shows the events page; an event is
  published to the broker as edge site00/edge0 would, and the time until its row is on the page is
  measured, `--live` times.
Goals (the console's issue): p95 under 150 ms per page, under 1 s from ingest to screen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Page, sync_playwright

from bench import central_events
from bench.console_rig import admin_key, scratch_database, seed_fleet, seed_people, serve, settings_for
from central.db import ensure_event_partitions, migrate
from common.messages import Event, encode
from common.models.fetch import models_dir
from common.topics import edge_topic

CHROMIUM = os.environ.get("FACEGATE_CHROMIUM", "/usr/bin/chromium")
ORIGIN_HEADER = "Origin"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def prepare(dsn: str, events: int, people: int) -> central_events.Fleet:
    end = datetime.now(UTC).replace(microsecond=0)
    migrate(dsn, now=end)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_event_partitions(conn, end, months_ahead=1, months_behind=13)
    fleet = central_events.Fleet([uuid.uuid4() for _ in range(people)], end)
    sites = [(f"site{s:02d}", f"Site {s}") for s in range(central_events.SITES)]
    stats = {
        "outbox_backlog": 0,
        "cameras": {f"cam{c}": {"state": "streaming", "fps": 5.0} for c in range(4)},
    }
    edges = [(site, f"edge{e}", stats) for site, _ in sites for e in range(central_events.EDGES_PER_SITE)]
    seed_fleet(dsn, sites, edges)
    seed_people(dsn, [(pid, f"Person {i:05d}") for i, pid in enumerate(fleet.people)])
    started = time.perf_counter()
    rate = asyncio.run(central_events.load(dsn, events, fleet))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    ready = time.perf_counter() - started
    print(f"{events} events COPYed at {rate:,.0f}/s, {people} people; ready in {ready:.0f} s")
    return fleet


def sign_in(client: httpx.Client, key: str) -> None:
    answer = client.post("/console/signin", data={"key": key}, headers={ORIGIN_HEADER: str(client.base_url)})
    assert answer.status_code == 303, answer.text


def page_paths(client: httpx.Client, fleet: central_events.Fleet) -> dict[str, str]:
    person = fleet.people[0]
    events = client.get("/console/events").text
    event = re.search(r'href="/console/events/([0-9a-f-]{36})"', events)
    assert event is not None, "no event on the events page"
    return {
        "fleet": "/console/fleet",
        "events (newest 50)": "/console/events",
        "events of a site": "/console/events?site=site07",
        "events of a person": f"/console/events?person={person}",
        "unknown events": "/console/events?unknown=1",
        "events, time range": "/console/events?since=2026-01-01T00:00&until=2026-02-01T00:00",
        "event": f"/console/events/{event.group(1)}",
        "people (first 50)": "/console/people",
        "people, name search": "/console/people?q=Person%2012",
        "person": f"/console/people/{person}",
        "galleries": "/console/galleries",
        "sites": "/console/sites",
        "jobs": "/console/jobs",
        "keys": "/console/keys",
        "audit": "/console/audit",
    }


def time_pages(client: httpx.Client, paths: dict[str, str], runs: int) -> list[tuple[str, float, float]]:
    rows = []
    for label, path in paths.items():
        assert client.get(path).status_code == 200, path  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            answer = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, path
        rows.append((label, statistics.median(times), percentile(times, 0.95)))
    return rows


def publisher(url: str) -> mqtt.Client:
    parsed = urlparse(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-console-{uuid.uuid4().hex[:8]}")
    client.connect(parsed.hostname or "127.0.0.1", parsed.port or 1883)
    client.loop_start()
    return client


def wait_row(page: Page, camera: str) -> None:
    page.wait_for_function(
        "camera => document.getElementById('event-rows').textContent.includes(camera)",
        arg=camera,
        polling="raf",
    )


def time_live(base: str, key: str, mqtt_url: str, count: int) -> list[float]:
    """Milliseconds from publishing an event to its row on Chromium's events page."""
    client = publisher(mqtt_url)
    topic = edge_topic("site00", "edge0", "events")
    times = []
    try:
        with sync_playwright() as playwright:
            args = ["--no-sandbox"] if os.geteuid() == 0 else []
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
            page = browser.new_context(base_url=base).new_page()
            page.goto("/console/signin")
            page.fill("#key", key)
            page.press("#key", "Enter")
            page.wait_for_url("**/console/fleet")
            page.goto("/console/events")
            page.wait_for_selector("#live-state[data-live=open]")
            for seq in range(count + 1):
                camera = f"bench-{uuid.uuid4().hex[:8]}"
                event = Event(site="site00", edge="edge0", camera=camera, seq=10_000_000 + seq,
                              track_id=seq, kind="unknown", person_id=None, score=0.1, threshold=0.36,
                              quality=0.8, bbox=(1.0, 2.0, 30.0, 40.0), model="sface-2021dec",
                              ts=datetime.now(UTC))  # fmt: skip
                started = time.perf_counter()
                client.publish(topic, encode(event), qos=1)
                wait_row(page, camera)
                if seq:  # the first one warms the path up
                    times.append((time.perf_counter() - started) * 1000)
                time.sleep(0.3)
            browser.close()
    finally:
        client.loop_stop()
        client.disconnect()
    return times


def report(rows: list[tuple[str, float, float]], live: list[float], say: Callable[[str], None]) -> None:
    say("\n| page | median ms | p95 ms |")
    say("|---|---|---|")
    for label, median, p95 in rows:
        say(f"| {label} | {median:.1f} | {p95:.1f} |")
    if live:
        say(f"\ningest to screen (Chromium, {len(live)} events): median {statistics.median(live):.0f} ms, "
            f"p95 {percentile(live, 0.95):.0f} ms, max {max(live):.0f} ms")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--live", type=int, default=30)
    parser.add_argument(
        "--database-url", default=os.environ.get("FACEGATE_DATABASE_URL", "postgresql:///postgres")
    )
    parser.add_argument("--mqtt-url", default=os.environ.get("FACEGATE_MQTT_URL", "mqtt://127.0.0.1:1883"))
    args = parser.parse_args()
    with scratch_database(args.database_url) as dsn, tempfile.TemporaryDirectory() as objects:
        fleet = prepare(dsn, args.events, args.people)
        key = admin_key(dsn)
        settings = settings_for(
            dsn, Path(objects), models_dir(), mqtt_url=args.mqtt_url,
            mqtt_client_id=f"bench-{uuid.uuid4().hex[:8]}", mqtt_shared_group="", db_pool_max=8,
        )  # fmt: skip
        with serve(settings) as base, httpx.Client(base_url=base, timeout=60) as client:
            sign_in(client, key)
            rows = time_pages(client, page_paths(client, fleet), args.runs)
            live = time_live(base, key, args.mqtt_url, args.live) if args.live else []
        report(rows, live, print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
