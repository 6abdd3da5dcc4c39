"""The unknown-clusters service: list and read clusters (site scope applies), enroll one as a new person
or merge it into a person (their best crops through the photo gate), audited.

Clusters exist only where pgvector does (central/db/vectors.py): elsewhere every call answers 503
`vector_search_off` saying what to install.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
from psycopg import AsyncConnection

from central import audit
from central.clusters import repository as repo
from central.clusters.schemas import (
    ClusterDetail,
    ClusterEnroll,
    ClusterEvent,
    ClusterMerge,
    ClusterOutcome,
    ClusterPage,
    ClusterRead,
)
from central.db.pool import AsyncPool
from central.db.vectors import INSTALL_HINT, vector_search_on
from central.enrollment.service import EnrollmentService
from central.errors import Conflict, NotFound, Unavailable
from central.people.schemas import PersonCreate
from central.people.service import PeopleService
from central.principal import Principal, Scope, require, require_scope
from central.storage import ObjectStore, StorageError

log = logging.getLogger("central.clusters")
EVENTS_SHOWN = 100


class ClusterService:
    def __init__(
        self,
        pool: AsyncPool,
        store: ObjectStore,
        people: PeopleService,
        enrollment: EnrollmentService,
        *,
        presign_ttl_s: int,
    ) -> None:
        self.pool, self.store, self.people, self.enrollment = pool, store, people, enrollment
        self.presign_ttl_s = presign_ttl_s

    async def list_clusters(
        self, principal: Principal, status: str, site: str | None, before: int | None, limit: int
    ) -> ClusterPage:
        require_scope(principal, Scope.VIEWER)
        sites = self._sites(principal, site)
        async with self.pool.connection() as conn:
            await self._require_vectors(conn)
            rows = await repo.list_clusters(conn, status, sites, before or 2**62, limit + 1)
            keys = await repo.crop_keys(conn, [r.best_event_id for r in rows[:limit] if r.best_event_id])
        items = [await self._read(row, keys) for row in rows[:limit]]
        return ClusterPage(items, rows[limit - 1].id if len(rows) > limit else None)

    async def get(self, principal: Principal, cluster_id: int) -> ClusterDetail:
        require_scope(principal, Scope.VIEWER)
        sites = list(principal.sites) or None
        async with self.pool.connection() as conn:
            await self._require_vectors(conn)
            row = await repo.get_cluster(conn, cluster_id)
            if row is None or (sites is not None and not set(row.sites) & set(sites)):
                raise NotFound(f"no unknown cluster {cluster_id}", code="cluster_not_found")
            members = await repo.events(conn, cluster_id, sites, EVENTS_SHOWN)
            keys = await repo.crop_keys(conn, [row.best_event_id] if row.best_event_id else [])
        events = [
            ClusterEvent(
                event_id=m.event_id, ts=m.ts, site=m.site, camera=m.camera, quality=m.quality,
                crop_url=await self._url(m.crop_key),
            )
            for m in members
        ]  # fmt: skip
        read = await self._read(row, keys)
        return ClusterDetail(**msgspec.structs.asdict(read), events=events)

    async def enroll(self, principal: Principal, cluster_id: int, data: ClusterEnroll) -> ClusterOutcome:
        """A new person from the cluster (POST /people's rules), their best crops enrolled."""
        require(principal, Scope.OPERATOR, None)
        await self._open(cluster_id)
        person = await self.people.create(
            principal, PersonCreate(data.external_id, data.display_name, {}, data.galleries)
        )
        return await self._assign(principal, cluster_id, person.id, data.photos, "enrolled")

    async def merge(self, principal: Principal, cluster_id: int, data: ClusterMerge) -> ClusterOutcome:
        """The cluster is an existing person's; `photos` of its best crops become their templates."""
        require(principal, Scope.OPERATOR, None)
        await self._open(cluster_id)
        await self.people.get(data.person_id)
        return await self._assign(principal, cluster_id, data.person_id, data.photos, "merged")

    async def _assign(
        self, principal: Principal, cluster_id: int, person: UUID, photos: int, status: str
    ) -> ClusterOutcome:
        async with self.pool.connection() as conn:
            row = await repo.get_cluster(conn, cluster_id, lock=True)
            if row is None or row.status != "open":
                raise Conflict(
                    f"unknown cluster {cluster_id} was enrolled or merged meanwhile", code="cluster_closed"
                )
            best = await repo.events(conn, cluster_id, None, photos, best_first=True) if photos else []
            count = await repo.attribute(conn, cluster_id, person, status)
            details = {"person_id": str(person), "events": count, "photos": photos}
            action = "cluster.enroll" if status == "enrolled" else "cluster.merge"
            await audit.record(conn, principal, action, "unknown_cluster", cluster_id, details=details)
        templates, refused = await self._templates(
            principal, person, [m.crop_key for m in best if m.crop_key]
        )
        log.info("cluster_assigned", extra={"cluster": cluster_id, "status": status, "events": count})
        return ClusterOutcome(
            cluster_id=cluster_id, person_id=person, events=count, templates=templates, refused=refused
        )

    async def _templates(
        self, principal: Principal, person: UUID, keys: Sequence[str]
    ) -> tuple[list[UUID], list[str]]:
        templates: list[UUID] = []
        refused: list[str] = []
        for key in keys:
            try:
                crop = await anyio.to_thread.run_sync(self.store.get, key)
            except StorageError as err:
                log.warning("cluster_crop_unreadable", extra={"key": key, "error": str(err)})
                refused.append("no_crop")
                continue
            result = await self.enrollment.enroll_photo(principal, person, key.rsplit("/", 1)[-1], crop)
            if result.template_id is not None:
                templates.append(result.template_id)
            else:
                refused.append(result.reason or result.status)
        return templates, refused

    async def _open(self, cluster_id: int) -> None:
        async with self.pool.connection() as conn:
            await self._require_vectors(conn)
            row = await repo.get_cluster(conn, cluster_id)
        if row is None:
            raise NotFound(f"no unknown cluster {cluster_id}", code="cluster_not_found")
        if row.status != "open":
            raise Conflict(
                f"unknown cluster {cluster_id} is {row.status} (person {row.person_id}) already",
                code="cluster_closed",
            )

    async def _read(self, row: repo.ClusterRow, keys: dict[UUID, str]) -> ClusterRead:
        url = await self._url(keys.get(row.best_event_id)) if row.best_event_id else None
        return ClusterRead(
            id=row.id, members=row.members, sites=row.sites, first_seen=row.first_seen,
            last_seen=row.last_seen, best_event_id=row.best_event_id, best_crop_url=url,
            status=row.status, person_id=row.person_id,  # type: ignore[arg-type]
        )  # fmt: skip

    async def _url(self, key: str | None) -> str | None:
        if key is None:
            return None
        return await anyio.to_thread.run_sync(self.store.presigned_get, key, self.presign_ttl_s)

    @staticmethod
    def _sites(principal: Principal, site: str | None) -> list[str] | None:
        if site is not None:
            require(principal, Scope.VIEWER, site)
            return [site]
        return list(principal.sites) or None

    @staticmethod
    async def _require_vectors(conn: AsyncConnection[Any]) -> None:
        if not await vector_search_on(conn):
            raise Unavailable(f"unknown-face clusters are off: {INSTALL_HINT}", code="vector_search_off")
