"""HTTP routes of the delivery log (mounted under /api/v1 by central/app.py): `/api/v1/deliveries`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.types import ControllerRouterHandler

from central.notify.schemas import DeliveryDetail, DeliveryPage, DeliveryStatus
from central.notify.service import DeliveryService
from central.principal import Principal, Scope

TAGS = ["notifications"]


@get("/deliveries", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_deliveries(
    *,
    principal: NamedDependency[Principal],
    deliveries: NamedDependency[DeliveryService],
    rule: Annotated[UUID | None, QueryParameter(description="only this watch rule's deliveries")] = None,
    status: Annotated[DeliveryStatus | None, QueryParameter(description="pending, sent or dead")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, QueryParameter(max_length=200, description="`next` of the previous page")
    ] = None,
) -> DeliveryPage:
    """The delivery log, newest first: each delivery's channel, status, attempts and last error."""
    return await deliveries.list(principal, rule, status, limit, cursor)


@get("/deliveries/{ident:uuid}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_delivery(
    ident: FromPath[UUID], principal: NamedDependency[Principal], deliveries: NamedDependency[DeliveryService]
) -> DeliveryDetail:
    """One delivery with every attempt (sent, failed with its reason, dead)."""
    return await deliveries.get(principal, ident)


@post("/deliveries/{ident:uuid}/retry", opt={"scope": Scope.OPERATOR}, tags=TAGS, status_code=200)
async def retry_delivery(
    ident: FromPath[UUID], principal: NamedDependency[Principal], deliveries: NamedDependency[DeliveryService]
) -> DeliveryDetail:
    """Send a dead delivery again now, with the same delivery id; 409 once it was sent."""
    return await deliveries.retry(principal, ident)


ROUTES: list[ControllerRouterHandler] = [list_deliveries, get_delivery, retry_delivery]
