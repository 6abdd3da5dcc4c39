"""A central for the console's benchmark and screenshots: a scratch database on a PostgreSQL server,
a folder object store, central served by uvicorn on a free port, and seed rows (sites, edges, people).

    with scratch_database(url) as dsn, serve(settings_for(dsn, folder, models)) as base: ...
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from central.auth.repository import create_key_sync
from central.settings import CentralSettings
from central.storage import FileSettings
from devtools.services.central import serve as serve_central

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


def serve(settings: CentralSettings) -> AbstractContextManager[str]:
    """Central under uvicorn in a thread (a big seeded database may take a while to start): its base URL."""
    return serve_central(settings, START_TIMEOUT_S)


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
