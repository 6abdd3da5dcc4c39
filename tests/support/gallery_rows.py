"""Rows the gallery tests need, written directly with SQL (sites, people, templates, edges), and version-log
appends through central/galleries/repository.py, so the gallery tests do not depend on other packages'
routes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import numpy as np
import psycopg

from central.auth.keys import hash_secret, new_api_key
from central.galleries.changes import change_body
from central.galleries.repository import append_change, record_person_change

MODEL = "sface-2021dec"
SIZE = 128


def embedding(rng: np.random.Generator, size: int = SIZE) -> bytes:
    """An L2-normalised random vector as little-endian float32 bytes."""
    vector = rng.standard_normal(size).astype(np.float32)
    return (vector / np.linalg.norm(vector)).astype("<f4").tobytes()


def add_site(conn: psycopg.Connection[Any], site: str) -> str:
    conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s)", (site, f"site {site}"))
    return site


def add_person(conn: psycopg.Connection[Any], name: str = "") -> UUID:
    row = conn.execute("INSERT INTO people (display_name) VALUES (%s) RETURNING id", (name,)).fetchone()
    assert row is not None
    person: UUID = row[0]
    return person


def add_template(
    conn: psycopg.Connection[Any],
    person: UUID,
    rng: np.random.Generator,
    model: str = MODEL,
    size: int = SIZE,
) -> UUID:
    row = conn.execute(
        "INSERT INTO templates (person_id, model_id, embedding_size, embedding) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (person, model, size, embedding(rng, size)),
    ).fetchone()
    assert row is not None
    template: UUID = row[0]
    return template


def add_edge(conn: psycopg.Connection[Any], site: str, edge: str) -> str:
    """An edge of `site` with an HTTP credential; returns the credential (Bearer value)."""
    issued = new_api_key()
    conn.execute(
        "INSERT INTO edges (site_id, id, api_key_prefix, api_secret_hash) VALUES (%s, %s, %s, %s)",
        (site, edge, issued.prefix, hash_secret(issued.secret)),
    )
    return issued.display


def person_change(dsn: str, person: UUID, **kwargs: Any) -> dict[str, int]:
    """record_person_change in its own transaction (as enrollment would call it)."""

    async def run() -> dict[str, int]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await record_person_change(conn, person, **kwargs)

    return asyncio.run(run())


def enroll(dsn: str, person: UUID, rng: np.random.Generator, model: str = MODEL) -> UUID:
    """Insert a template and log it, in one transaction (what enrollment does)."""
    with psycopg.connect(dsn) as conn:
        template = add_template(conn, person, rng, model)
    person_change(dsn, person, upserts=[template])
    return template


def delete_template(dsn: str, person: UUID, template: UUID) -> dict[str, int]:
    """Delete a template row and log its deletion in one transaction."""

    async def run() -> dict[str, int]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await conn.execute("DELETE FROM templates WHERE id = %s", (template,))
            return await record_person_change(conn, person, deleted_templates=[template])

    return asyncio.run(run())


def append_concurrently(dsn: str, gallery: str, bodies: Sequence[dict[str, Any]]) -> list[int]:
    """Append each body from its own connection, all at once; returns the versions they got."""

    async def one(body: dict[str, Any]) -> int:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await append_change(conn, gallery, body)

    async def run() -> list[int]:
        return list(await asyncio.gather(*(one(body) for body in bodies)))

    return asyncio.run(run())


def sites_change(sites: Sequence[str]) -> dict[str, Any]:
    return change_body(sites=sites)


def versions(conn: psycopg.Connection[Any], gallery: str) -> list[int]:
    rows = conn.execute(
        "SELECT version FROM gallery_changes WHERE gallery_id = %s ORDER BY version", (gallery,)
    ).fetchall()
    return [row[0] for row in rows]
