"""Sites and edges in PostgreSQL. Every function runs inside the caller's transaction.

Edge credentials are written only as hashes (see credentials.py); no function here reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from central.fleet.credentials import IssuedCredentials, broker_username, topic_prefix
from central.fleet.schemas import EdgeRead, SiteRead

_SITE_COLUMNS = (
    "s.id, s.name, s.created_at, (SELECT count(*) FROM edges e WHERE e.site_id = s.id), s.time_zone"
)
_EDGE_COLUMNS = (
    "site_id, id, name, created_at, status, last_seen, software_version, detector_model,"
    " recognizer_model, gallery_versions, stats, stats_at"
)
_DEPENDENTS = """
SELECT 'edges', coalesce(array_agg(id::text ORDER BY id), '{}') FROM edges WHERE site_id = %(s)s
UNION ALL
SELECT 'galleries', coalesce(array_agg(gallery_id::text ORDER BY gallery_id), '{}')
  FROM gallery_sites WHERE site_id = %(s)s
UNION ALL
SELECT 'api_keys', coalesce(array_agg(prefix ORDER BY prefix), '{}')
  FROM api_keys WHERE revoked_at IS NULL AND %(s)s = ANY(sites)
"""


def _site(row: Sequence[Any]) -> SiteRead:
    return SiteRead(id=row[0], name=row[1], created_at=row[2], edge_count=int(row[3]), time_zone=row[4])


def _edge(row: Sequence[Any]) -> EdgeRead:
    site, ident = row[0], row[1]
    return EdgeRead(
        site=site,
        id=ident,
        name=row[2],
        created_at=row[3],
        broker_username=broker_username(site, ident),
        topic_prefix=topic_prefix(site, ident),
        status=row[4],
        last_seen=row[5],
        software_version=row[6],
        detector_model=row[7],
        recognizer_model=row[8],
        gallery_versions=row[9],
        stats=row[10],
        stats_at=row[11],
    )


async def list_sites(conn: AsyncConnection[Any], sites: Sequence[str] | None) -> list[SiteRead]:
    """Every site, or only `sites` (a restricted key's), ordered by id."""
    if sites is None:
        cur = await conn.execute(f"SELECT {_SITE_COLUMNS} FROM sites s ORDER BY s.id")
    else:
        cur = await conn.execute(
            f"SELECT {_SITE_COLUMNS} FROM sites s WHERE s.id = ANY(%s) ORDER BY s.id", (list(sites),)
        )
    return [_site(row) for row in await cur.fetchall()]


async def get_site(conn: AsyncConnection[Any], site: str, *, lock: bool = False) -> SiteRead | None:
    """The site, or None; `lock` takes its row lock (blocks edge registration until commit)."""
    suffix = " FOR UPDATE OF s" if lock else ""
    cur = await conn.execute(f"SELECT {_SITE_COLUMNS} FROM sites s WHERE s.id = %s{suffix}", (site,))
    row = await cur.fetchone()
    return _site(row) if row else None


async def create_site(
    conn: AsyncConnection[Any], site: str, name: str, time_zone: str = "UTC"
) -> SiteRead | None:
    """Insert a site; None when the id is taken."""
    cur = await conn.execute(
        "INSERT INTO sites (id, name, time_zone) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING"
        " RETURNING id, name, created_at, 0, time_zone",
        (site, name, time_zone),
    )
    row = await cur.fetchone()
    return _site(row) if row else None


async def rename_site(
    conn: AsyncConnection[Any], site: str, name: str | None, time_zone: str | None = None
) -> SiteRead | None:
    """Change the name and/or the time zone (None: kept); None when there is no such site."""
    cur = await conn.execute(
        "UPDATE sites SET name = coalesce(%s, name), time_zone = coalesce(%s, time_zone) WHERE id = %s"
        " RETURNING id",
        (name, time_zone, site),
    )
    if await cur.fetchone() is None:
        return None
    return await get_site(conn, site)


async def site_dependents(conn: AsyncConnection[Any], site: str) -> dict[str, list[str]]:
    """What still refers to the site: its edges, galleries scoped to it, unrevoked keys restricted to it."""
    cur = await conn.execute(_DEPENDENTS, {"s": site})
    return {kind: list(ids) for kind, ids in await cur.fetchall() if ids}


async def delete_site(conn: AsyncConnection[Any], site: str) -> bool:
    cur = await conn.execute("DELETE FROM sites WHERE id = %s", (site,))
    return cur.rowcount == 1


async def list_edges(
    conn: AsyncConnection[Any],
    sites: Sequence[str] | None,
    status: str | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[EdgeRead]:
    """Edges ordered by (site, id): of `sites` (None: all), of one `status`, after the cursor `after`."""
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if sites is not None:
        conditions.append("site_id = ANY(%(sites)s)")
        params["sites"] = list(sites)
    if status is not None:
        conditions.append("status = %(status)s")
        params["status"] = status
    if after is not None:
        conditions.append("(site_id, id) > (%(after_site)s, %(after_edge)s)")
        params["after_site"], params["after_edge"] = after
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    cur = await conn.execute(
        f"SELECT {_EDGE_COLUMNS} FROM edges {where} ORDER BY site_id, id LIMIT %(limit)s", params
    )
    return [_edge(row) for row in await cur.fetchall()]


async def get_edge(conn: AsyncConnection[Any], site: str, edge: str) -> EdgeRead | None:
    cur = await conn.execute(
        f"SELECT {_EDGE_COLUMNS} FROM edges WHERE site_id = %s AND id = %s", (site, edge)
    )
    row = await cur.fetchone()
    return _edge(row) if row else None


async def prefix_taken(conn: AsyncConnection[Any], prefix: str) -> bool:
    """Whether an API key or another edge already uses the credential prefix (they share one lookup)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM api_keys WHERE prefix = %(p)s)"
        " OR EXISTS (SELECT 1 FROM edges WHERE api_key_prefix = %(p)s)",
        {"p": prefix},
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def insert_edge(
    conn: AsyncConnection[Any], site: str, edge: str, name: str, issued: IssuedCredentials
) -> EdgeRead | None:
    """Register an edge with the credential hashes; None when the site already has an edge `edge`."""
    cur = await conn.execute(
        "INSERT INTO edges (site_id, id, name, broker_password_hash, api_key_prefix, api_secret_hash)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (site_id, id) DO NOTHING"
        f" RETURNING {_EDGE_COLUMNS}",
        (site, edge, name, issued.broker_password_hash, issued.api_key.prefix, issued.api_secret_hash),
    )
    row = await cur.fetchone()
    return _edge(row) if row else None


async def replace_credentials(
    conn: AsyncConnection[Any], site: str, edge: str, issued: IssuedCredentials
) -> EdgeRead | None:
    """Swap in new credential hashes (the old credentials stop working); None when there is no edge."""
    cur = await conn.execute(
        "UPDATE edges SET broker_password_hash = %s, api_key_prefix = %s, api_secret_hash = %s"
        f" WHERE site_id = %s AND id = %s RETURNING {_EDGE_COLUMNS}",
        (issued.broker_password_hash, issued.api_key.prefix, issued.api_secret_hash, site, edge),
    )
    row = await cur.fetchone()
    return _edge(row) if row else None


async def delete_edge(conn: AsyncConnection[Any], site: str, edge: str) -> EdgeRead | None:
    cur = await conn.execute(
        f"DELETE FROM edges WHERE site_id = %s AND id = %s RETURNING {_EDGE_COLUMNS}", (site, edge)
    )
    row = await cur.fetchone()
    return _edge(row) if row else None
