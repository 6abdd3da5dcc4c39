"""`/api/v1/unknown-clusters`: unknown faces grouped across cameras and sites (viewers read; unrestricted
operators enroll or merge). The rules are in central/clusters/service.py."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.types import ControllerRouterHandler

from central.clusters.schemas import ClusterDetail, ClusterEnroll, ClusterMerge, ClusterOutcome, ClusterPage
from central.clusters.service import ClusterService
from central.principal import Principal, Scope

TAGS = ["unknown clusters"]


@get("/unknown-clusters", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_clusters(
    *,
    principal: NamedDependency[Principal],
    clusters: NamedDependency[ClusterService],
    status: Annotated[Literal["open", "enrolled", "merged"], QueryParameter()] = "open",
    site: Annotated[str | None, QueryParameter(max_length=64, description="only clusters seen here")] = None,
    before: Annotated[int | None, QueryParameter(ge=1, description="`next` of the previous page")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
) -> ClusterPage:
    """Clusters of unknown faces, newest first: count, sites, first and last seen, best crop. 503
    `vector_search_off` where central's PostgreSQL has no pgvector."""
    return await clusters.list_clusters(principal, status, site, before, limit)


@get("/unknown-clusters/{cluster_id:int}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_cluster(
    cluster_id: FromPath[int],
    principal: NamedDependency[Principal],
    clusters: NamedDependency[ClusterService],
) -> ClusterDetail:
    """One cluster and its newest events (time, site, camera, crop)."""
    return await clusters.get(principal, cluster_id)


@post("/unknown-clusters/{cluster_id:int}/enroll", opt={"scope": Scope.OPERATOR}, tags=TAGS, status_code=200)
async def enroll_cluster(
    cluster_id: FromPath[int],
    data: JSONBody[ClusterEnroll],
    principal: NamedDependency[Principal],
    clusters: NamedDependency[ClusterService],
) -> ClusterOutcome:
    """Enroll the cluster as a new person (its best crops through the photo gate)."""
    return await clusters.enroll(principal, cluster_id, data)


@post("/unknown-clusters/{cluster_id:int}/merge", opt={"scope": Scope.OPERATOR}, tags=TAGS, status_code=200)
async def merge_cluster(
    cluster_id: FromPath[int],
    data: JSONBody[ClusterMerge],
    principal: NamedDependency[Principal],
    clusters: NamedDependency[ClusterService],
) -> ClusterOutcome:
    """The cluster is an existing person: its events become theirs (and `photos` crops their templates)."""
    return await clusters.merge(principal, cluster_id, data)


ROUTES: list[ControllerRouterHandler] = [list_clusters, get_cluster, enroll_cluster, merge_cluster]
