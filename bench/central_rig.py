"""A real `facegate central serve` for the benchmarks that measure it over HTTP (central_enroll, zip_bombs,
auth_flood): a scratch database on the local PostgreSQL, an empty Redis database number, and central on a
free port with a folder object store.

    with scratch_services() as (dsn, redis_url), central_process(dsn, redis_url, folder) as (url, pid): ...
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from common.models.fetch import models_dir
from devtools.services import postgres, redis
from devtools.services.ports import free_port

SECRET = "bench-secret-key-with-at-least-32-bytes-0123456789"
START_TIMEOUT_S = 90.0


@contextmanager
def scratch_services() -> Iterator[tuple[str, str | None]]:
    """(database URL, Redis URL or None): a scratch database and an empty Redis database number."""
    server = postgres.find_shared()
    if server is None:
        raise SystemExit("no PostgreSQL on 127.0.0.1:5432: run scripts/ensure-services.sh")
    database = postgres.create_database(server)
    redis_server = redis.find_shared()
    claimed = redis.claim_database(redis_server) if redis_server is not None else None
    try:
        yield database.dsn, claimed.url if claimed else None
    finally:
        postgres.drop_database(server, database.dbname)
        if claimed is not None:
            redis.release_database(claimed)


@contextmanager
def central_process(
    dsn: str, redis_url: str | None, storage: Path, *, workers: int = 2, extra: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """`facegate central serve` on a free port (`extra`: more environment), its log in a temporary file:
    its URL and process id once /health answers."""
    port = free_port()
    env = dict(
        os.environ,
        FACEGATE_DATABASE_URL=dsn,
        FACEGATE_SECRET_KEY=SECRET,
        FACEGATE_STORAGE_DIR=str(storage),
        FACEGATE_MODELS=str(models_dir()),
        FACEGATE_ENROLL_WORKERS=str(workers),
        FACEGATE_DUPLICATE_THRESHOLD="2",
        FACEGATE_RATE_LIMIT_PER_S="100000",
        FACEGATE_RATE_LIMIT_BURST="100000",
    )
    env.update(extra or {})
    env.pop("FACEGATE_REDIS_URL", None)
    if redis_url:
        env["FACEGATE_REDIS_URL"] = redis_url
    facegate = str(Path(sys.executable).parent / "facegate")
    cmd = [facegate, "central", "serve", "--port", str(port), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a long run never blocks on a full pipe
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_healthy(url, proc, log)
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"central exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"central did not answer /health within {START_TIMEOUT_S:.0f} s")
