"""The read behind the fleet gauges: every edge's row, judged by the database clock."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

_FLEET = """
SELECT e.site_id, e.id,
       e.status = 'online' AND e.last_seen IS NOT NULL
           AND e.last_seen > now() - make_interval(secs => %(stale)s) AS up,
       extract(epoch FROM now() - e.last_seen)::float8 AS since_seen,
       e.stats,
       COALESCE((
           SELECT sum(greatest(0, g.current_version - CASE
                      WHEN jsonb_typeof(e.gallery_versions -> g.id) = 'number'
                      THEN (e.gallery_versions ->> g.id)::numeric ELSE 0 END))
             FROM gallery_sites gs JOIN galleries g ON g.id = gs.gallery_id
            WHERE gs.site_id = e.site_id
       ), 0)::float8 AS gallery_lag
  FROM edges e
 ORDER BY e.site_id, e.id
"""


async def fleet_rows(conn: AsyncConnection[Any], offline_after_s: float) -> list[tuple[Any, ...]]:
    """(site, edge, up, seconds since seen, stats, gallery lag) of every registered edge, by (site, edge)."""
    rows: list[tuple[Any, ...]] = await (await conn.execute(_FLEET, {"stale": offline_after_s})).fetchall()
    return rows
