"""A central for the console's benchmark and screenshots: a scratch database on a PostgreSQL server,
a folder object store, central served by uvicorn on a free port, and seed rows (sites, edges, people).

    with scratch_database(url) as dsn, serve(settings_for(dsn, folder, models)) as base: ...
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from psycopg import sql

from central.app import create_app
from central.auth.repository import create_key_sync
from central.settings import CentralSettings
from central.storage import FileSettings

START_TIMEOUT_S = 120.0


@contextmanager
def scratch_database(server_url: str, prefix: str = "facegate_console") -> Iterator[str]:
    """A new database on the server of `server_url` (dropped on exit): its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def settings_for(dsn: str, folder: Path, models: Path, **overrides: Any) -> CentralSettings:
    """Central on `dsn` with its objects in `folder` (no Redis, no broker unless overridden)."""
    secret = uuid.uuid4().hex * 2
    base = CentralSettings(
        database_url=dsn,
        secret_key=secret,
        storage=FileSettings(folder, secret),
        models_dir=models,
        rate_limit_per_s=10_000.0,
        rate_limit_burst=10_000,
    )
    return replace(base, **overrides)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(settings: CentralSettings) -> Iterator[str]:
    """Central under uvicorn in a thread: its base URL until the block ends."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"central-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"central did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def admin_key(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return create_key_sync(conn, "console bench", "admin").display


def seed_fleet(
    dsn: str, sites: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str, dict[str, Any]]]
) -> None:
    """Sites (id, name) and edges (site, edge, heartbeat stats), online and just seen."""
    with psycopg.connect(dsn) as conn:
        for site, name in sites:
            conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (site, name))
        for site, edge, stats in edges:
            conn.execute(
                "INSERT INTO edges (site_id, id, status, last_seen, software_version, recognizer_model,"
                " stats, stats_at) VALUES (%s, %s, 'online', now(), '0.1.0', 'sface-2021dec', %s, now())"
                " ON CONFLICT DO NOTHING",
                (site, edge, psycopg.types.json.Jsonb(stats)),
            )


def seed_people(dsn: str, people: Sequence[tuple[uuid.UUID, str]]) -> None:
    """People rows (id, name) without photos: the ids the generated events name."""
    with (
        psycopg.connect(dsn) as conn,
        conn.cursor().copy("COPY people (id, external_id, display_name) FROM STDIN") as copy,
    ):
        for person_id, name in people:
            copy.write_row((person_id, f"p-{person_id.hex[:12]}", name))
