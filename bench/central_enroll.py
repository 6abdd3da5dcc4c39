"""Enrollment throughput of a real central, and how /health answers meanwhile.

    python bench/central_enroll.py [--photos N] [--concurrency C] [--workers W]

Starts `facegate central serve` on a free port over a scratch database on the local PostgreSQL
(created, then dropped), a filesystem object store in a temporary folder and, when the local Redis
answers, a Redis queue. N real photos (the pinned samples, plus ../shared/data/faces-dev when
present, repeated as needed) are enrolled twice, each copy under a person of its own:

- single: one POST /api/v1/people/{id}/photos per photo, C requests in flight;
- bulk: one zip as one enrollment job, polled until done.

FACEGATE_DUPLICATE_THRESHOLD is set to 2 (never reached), so repeated photos of one face are
enrolled in full instead of stopping at the duplicate-person check. A thread polls /health every
20 ms throughout and reports its latency at idle and under each load. The bare pipeline line is
`pipeline.process` on the same (decoded) photos in this process, on one thread: the ratio column is
photos/s divided by that single-thread rate.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.central_rig import SECRET, central_process, scratch_services  # noqa: E402
from central.auth.repository import create_key_sync  # noqa: E402
from central.db import migrate  # noqa: E402
from common.models.fetch import fetch_models, models_dir  # noqa: E402
from demo.sample_faces import fetch_samples  # noqa: E402

DEV_DIR = HERE.parent.parent / "shared" / "data" / "faces-dev"
HEALTH_EVERY_S = 0.02


@dataclass
class HealthProbe:
    """Polls /health from a thread; latencies are filed under the phase current when sent."""

    url: str
    phase: str = "idle"
    samples: dict[str, list[float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self.stop.is_set():
                phase, start = self.phase, time.perf_counter()
                client.get(f"{self.url}/health").raise_for_status()
                self.samples.setdefault(phase, []).append(time.perf_counter() - start)
                time.sleep(HEALTH_EVERY_S)

    def summary(self, phase: str) -> str:
        values = sorted(self.samples.get(phase, []))
        if not values:
            return "-"
        p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
        return f"p50 {1000 * statistics.median(values):.1f} ms, p99 {1000 * p99:.1f} ms (n={len(values)})"


def photo_files() -> list[Path]:
    files = [sample.path for sample in fetch_samples().values()]
    if DEV_DIR.is_dir():
        files += sorted(p for p in DEV_DIR.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return files


def bare_pipeline(files: list[Path]) -> float:
    """Seconds per photo of pipeline.process on one thread (decoded frames, after a warm-up)."""
    from central.runtime import load_pipeline
    from central.settings import CentralSettings
    from central.storage import FileSettings
    from common.pipeline.image import ImageLimits, load_image

    settings = CentralSettings("", SECRET, FileSettings(Path(), SECRET), models_dir=models_dir())
    pipeline = load_pipeline(settings)
    frames = [load_image(path, ImageLimits()) for path in files]
    pipeline.process(frames[0])
    start = time.perf_counter()
    for frame in frames:
        pipeline.process(frame)
    return (time.perf_counter() - start) / len(frames)


def single_uploads(
    client: httpx.Client, photos: list[Path], concurrency: int
) -> tuple[float, dict[str, int]]:
    ids = []
    for n in range(len(photos)):
        created = client.post("/api/v1/people", json={"external_id": f"single-{n}"})
        created.raise_for_status()
        ids.append(created.json()["id"])

    def upload(pair: tuple[str, Path]) -> str:
        person, path = pair
        files = {"photos": (path.name, path.read_bytes(), "image/jpeg")}
        response = client.post(f"/api/v1/people/{person}/photos", files=files)
        response.raise_for_status()
        return str(response.json()[0]["status"])

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(upload, zip(ids, photos, strict=True)))
    elapsed = time.perf_counter() - start
    return elapsed, {s: statuses.count(s) for s in set(statuses)}


def bulk_job(client: httpx.Client, photos: list[Path]) -> tuple[float, dict[str, int]]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n, path in enumerate(photos):
            archive.write(path, f"bulk-{n}/{path.name}")
    start = time.perf_counter()
    response = client.post(
        "/api/v1/enrollment-jobs", content=buffer.getvalue(), headers={"Content-Type": "application/zip"}
    )
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        state = client.get(f"/api/v1/enrollment-jobs/{job_id}", params={"results_limit": 0}).json()
        if state["status"] in {"done", "failed"}:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    return elapsed, {"accepted": state["accepted"], "rejected": state["rejected"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=80, help="photos per mode (default: 80)")
    parser.add_argument("--concurrency", type=int, default=8, help="single uploads in flight (default: 8)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="FACEGATE_ENROLL_WORKERS")
    args = parser.parse_args()
    fetch_models(models_dir())
    files = photo_files()
    photos = list(itertools.islice(itertools.cycle(files), args.photos))
    per_photo = bare_pipeline(files)
    rows = []
    with ExitStack() as stack:
        dsn, redis_url = stack.enter_context(scratch_services())
        storage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-store-")))
        migrate(dsn)
        with psycopg.connect(dsn) as conn:
            key = create_key_sync(conn, "bench", "admin").display
        url, _ = stack.enter_context(central_process(dsn, redis_url, storage, workers=args.workers))
        client = stack.enter_context(
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300.0)
        )
        probe = HealthProbe(url)
        thread = threading.Thread(target=probe.run, daemon=True)
        thread.start()
        time.sleep(3.0)
        for phase in ("single", "bulk"):
            probe.phase = phase
            if phase == "single":
                elapsed, counts = single_uploads(client, photos, args.concurrency)
            else:
                elapsed, counts = bulk_job(client, photos)
            probe.phase = "idle"
            rows.append((phase, elapsed, counts))
            time.sleep(1.0)
        probe.stop.set()
        thread.join()
    print(f"queue: {'redis' if redis_url else 'in-process'}")
    report(args, len(files), per_photo, rows, probe)
    return 0


def report(
    args: argparse.Namespace,
    unique: int,
    per_photo: float,
    rows: list[tuple[str, float, dict[str, int]]],
    probe: HealthProbe,
) -> None:
    print(
        f"{args.photos} photos per mode ({unique} distinct files), enroll workers {args.workers}, "
        f"single-upload concurrency {args.concurrency}, {os.cpu_count()} CPUs"
    )
    print(f"{'mode':<28}{'seconds':>9}{'photos/s':>10}{'ratio':>8}  outcomes / /health latency")
    print(f"{'bare pipeline (1 thread)':<28}{per_photo * unique:>9.2f}{1 / per_photo:>10.1f}{1.0:>8.2f}  "
          f"{1000 * per_photo:.1f} ms/photo")  # fmt: skip
    for phase, elapsed, counts in rows:
        rate = args.photos / elapsed
        print(f"{phase:<28}{elapsed:>9.2f}{rate:>10.1f}{rate * per_photo:>8.2f}  {counts}")
    for phase in ("idle", "single", "bulk"):
        print(f"/health during {phase:<13} {probe.summary(phase)}")


if __name__ == "__main__":
    sys.exit(main())
