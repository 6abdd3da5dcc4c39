"""Enrollment-to-matchable latency: from an enrollment's API response until every edge holds the template.

    python bench/sync_latency.py [--edges 10] [--enrollments 24] [--poll-s 5]

Starts a private Mosquitto, `facegate central serve` (a real process, MQTT on, so the gallery
distributor runs; filesystem object store; scratch database on the local PostgreSQL) and one process
holding N edges that run only the gallery-sync client: edge/delivery/mqtt.py + edge/gallery/sync.py +
edge/gallery/cache.py + edge/gallery/snapshots.py, each with its own SQLite gallery in a temporary
folder, as edge/daemon.py wires them.
The edges process polls every edge's in-memory gallery version every 2 ms and reports each new minimum
with its CLOCK_MONOTONIC time (shared by the processes).

Each enrollment: a person is created in the gallery (its version is let reach every edge first), then
one photo is enrolled; the clock starts when that response arrives and stops when every edge's gallery
is at the version the enrollment committed (which holds the new template). Photos: the pinned samples
plus ../shared/data/faces-dev when present, repeated as needed; FACEGATE_DUPLICATE_THRESHOLD=2 lets a
repeated face enroll again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from central.auth.repository import create_key_sync  # noqa: E402
from central.bench_ingest import private_broker  # noqa: E402
from central.db import migrate  # noqa: E402
from common.models.fetch import fetch_models, models_dir  # noqa: E402
from common.mqtt.incoming import Incoming  # noqa: E402
from demo.sample_faces import fetch_samples  # noqa: E402
from devtools.services import postgres  # noqa: E402
from devtools.services.ports import free_port  # noqa: E402
from edge.delivery.mqtt import Versions  # noqa: E402
from edge.gallery.cache import Gallery  # noqa: E402

DEV_DIR = HERE.parent.parent / "shared" / "data" / "faces-dev"
SECRET = "bench-secret-key-with-at-least-32-bytes-0123456789"
SITE, GALLERY, MODEL = "bench", "staff", "sface-2021dec"
WAIT_S = 60.0


def photo_files() -> list[Path]:
    files = [sample.path for sample in fetch_samples().values()]
    if DEV_DIR.is_dir():
        files += sorted(p for p in DEV_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return files


class EdgeVersions:
    """Reads the edges process's "<min version> <monotonic time>" lines; `reached(v)` is when every
    edge first held version v or later."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.times: dict[int, float] = {}
        self.current = -1
        self.ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            version, at = line.split()
            with self._changed:
                for v in range(self.current + 1, int(version) + 1):
                    self.times[v] = float(at)
                self.current = max(self.current, int(version))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def reached(self, version: int) -> float:
        with self._changed:
            if not self._changed.wait_for(lambda: self.current >= version or self.ended, WAIT_S):
                raise TimeoutError(f"the edges did not reach version {version} in {WAIT_S:g} s")
            if self.current < version:
                raise RuntimeError("the edges process ended (see its error above)")
            return self.times[version]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edges", type=int, default=10)
    parser.add_argument("--enrollments", type=int, default=24)
    parser.add_argument("--poll-s", type=float, default=5.0, help="FACEGATE_DISTRIBUTION_POLL_S (default 5)")
    parser.add_argument("--edges-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.edges_worker:
        return edges_worker(*args.edges_worker)
    fetch_models(models_dir())
    photos = photo_files()
    server = postgres.find_shared()
    if server is None:
        raise SystemExit("no PostgreSQL on 127.0.0.1:5432: run scripts/ensure-services.sh")
    database = postgres.create_database(server)
    try:
        with private_broker("") as broker, tempfile.TemporaryDirectory() as tmp:
            latencies = measure(args, database.dsn, broker, Path(tmp), photos)
    finally:
        postgres.drop_database(server, database.dbname)
    report(args, latencies, len(set(photos)))
    return 0


def measure(args: argparse.Namespace, dsn: str, broker: str, tmp: Path, photos: list[Path]) -> list[float]:
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s)", (SITE, SITE))
        for i in range(args.edges):
            conn.execute("INSERT INTO edges (site_id, id) VALUES (%s, %s)", (SITE, f"sync{i}"))
        key = create_key_sync(conn, "bench", "admin").display
    with (
        central(dsn, broker, tmp / "store", args.poll_s) as url,
        httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60) as api,
    ):
        api.post("/galleries", json={"id": GALLERY, "name": "Staff", "sites": [SITE]}).raise_for_status()
        command = [sys.executable, __file__, "--edges-worker", broker, url, key, str(args.edges), str(tmp)]
        edges = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            versions = EdgeVersions(edges)
            latencies = []
            usable, attempt = list(photos), 0
            for i in range(args.enrollments):
                person = api.post("/people", json={"external_id": f"p{i}", "galleries": [GALLERY]})
                person.raise_for_status()
                versions.reached(gallery_version(dsn))
                while True:
                    photo = usable[attempt % len(usable)]
                    attempt += 1
                    files = {"photos": (photo.name, photo.read_bytes(), "image/jpeg")}
                    response = api.post(f"/people/{person.json()['id']}/photos", files=files)
                    answered = time.monotonic()
                    response.raise_for_status()
                    if all(r["status"] == "accepted" for r in response.json()):
                        break
                    usable.remove(photo)  # e.g. two faces: not a photo to enroll
                    if not usable:
                        raise RuntimeError("no photo could be enrolled")
                latencies.append(versions.reached(gallery_version(dsn)) - answered)
        finally:
            assert edges.stdin is not None
            edges.stdin.close()
            edges.wait(30)
    return latencies


def gallery_version(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT current_version FROM galleries WHERE id = %s", (GALLERY,)).fetchone()
    assert row is not None
    return int(row[0])


class central:  # noqa: N801  # a context manager used like a function
    """`facegate central serve` with MQTT on; yields its base URL."""

    def __init__(self, dsn: str, broker: str, storage: Path, poll_s: float) -> None:
        self.port = free_port()
        self.env = dict(
            os.environ,
            FACEGATE_DATABASE_URL=dsn,
            FACEGATE_SECRET_KEY=SECRET,
            FACEGATE_STORAGE_DIR=str(storage),
            FACEGATE_MODELS=str(models_dir()),
            FACEGATE_MQTT_URL=f"mqtt://{broker}",
            FACEGATE_MQTT_CLIENT_ID=f"bench-central-{uuid.uuid4().hex[:6]}",
            FACEGATE_DISTRIBUTION_POLL_S=str(poll_s),
            FACEGATE_ENROLL_WORKERS="1",
            FACEGATE_DUPLICATE_THRESHOLD="2",
            FACEGATE_RATE_LIMIT_PER_S="100000",
            FACEGATE_RATE_LIMIT_BURST="100000",
        )
        self.env.pop("FACEGATE_REDIS_URL", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        facegate = str(Path(sys.executable).parent / "facegate")
        cmd = [facegate, "central", "serve", "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("central did not become ready")
            time.sleep(0.2)

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)


def edges_worker(broker: str, url: str, key: str, count: str, folder: str) -> int:
    """N gallery-sync edges in this process; prints each new minimum gallery version with its time."""
    from common.mqtt.settings import MqttSettings
    from edge.delivery.mqtt import EdgeMqttClient
    from edge.gallery.snapshots import SnapshotFetcher
    from edge.gallery.sync import GallerySync

    host, port = broker.rsplit(":", 1)
    galleries: list[Gallery] = []
    clients: list[EdgeMqttClient] = []
    syncs: list[GallerySync] = []
    for i in range(int(count)):
        path = Path(folder) / f"sync{i}" / f"{GALLERY}.db"
        path.parent.mkdir(parents=True)
        cache = Gallery.open(path, GALLERY, MODEL)
        sync = GallerySync({GALLERY: cache}, SnapshotFetcher(url, key), retry_s=0.2)
        client = EdgeMqttClient(
            MqttSettings(host=host, port=int(port), client_id=f"bench-sync{i}"),
            site=SITE,
            edge=f"sync{i}",
            versions=partial(held_versions, cache),
        )
        for topic, handler in sync.subscriptions():
            client.subscribe(topic, partial(payload_only, handler))
        client.start()
        sync.start()
        galleries.append(cache)
        clients.append(client)
        syncs.append(sync)
    stop = threading.Event()

    def wait_for_stdin_closed() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_stdin_closed, daemon=True).start()
    last = -1
    while not stop.is_set():
        current = min(g.version for g in galleries)
        if current != last:
            sys.stdout.write(f"{current} {time.monotonic()}\n")
            sys.stdout.flush()
            last = current
        time.sleep(0.002)
    for sync, client, cache in zip(syncs, clients, galleries, strict=True):
        sync.stop()
        client.stop()
        cache.close()
    return 0


def held_versions(cache: Gallery) -> Versions:
    return Versions(galleries={GALLERY: cache.version})


def payload_only(handler: Callable[[bytes], None], message: Incoming) -> None:
    handler(message.payload)


def report(args: argparse.Namespace, latencies: list[float], distinct: int) -> None:
    ms = sorted(1000 * x for x in latencies)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(
        f"enrollment-to-matchable, {args.edges} edges, {len(ms)} enrollments (photo pool: {distinct} files), "
        f"FACEGATE_DISTRIBUTION_POLL_S={args.poll_s:g}"
    )
    print(f"p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms, min {ms[0]:.0f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
