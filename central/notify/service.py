"""The delivery log: viewers read the deliveries of the sites they may see (per rule, per status) with
every attempt and its reason; operators requeue a dead delivery."""

from __future__ import annotations

from uuid import UUID

from central import audit
from central.cursors import decode_event_cursor, encode_event_cursor
from central.db.pool import AsyncPool
from central.errors import Conflict, NotFound
from central.notify import repository as repo
from central.notify.schemas import DeliveryDetail, DeliveryPage, DeliveryStatus
from central.principal import Principal, Scope, require, require_scope


class DeliveryService:
    def __init__(self, pool: AsyncPool) -> None:
        self.pool = pool

    async def list(
        self,
        principal: Principal,
        rule: UUID | None,
        status: DeliveryStatus | None,
        limit: int,
        cursor: str | None,
    ) -> DeliveryPage:
        require_scope(principal, Scope.VIEWER)
        after = decode_event_cursor(cursor) if cursor else None
        async with self.pool.connection() as conn:
            rows = await repo.list_deliveries(
                conn, rule=rule, status=status, sites=principal.sites or None, after=after, limit=limit + 1
            )
        items = rows[:limit]
        more = len(rows) > limit
        return DeliveryPage(items, encode_event_cursor(items[-1].created_at, items[-1].id) if more else None)

    async def get(self, principal: Principal, ident: UUID) -> DeliveryDetail:
        async with self.pool.connection() as conn:
            found = await repo.get_delivery(conn, ident)
            if found is None:
                raise NotFound(f"no delivery {ident}")
            require(principal, Scope.VIEWER, found.site)
            return DeliveryDetail(found, await repo.attempts(conn, ident))

    async def retry(self, principal: Principal, ident: UUID) -> DeliveryDetail:
        """Requeue a dead or waiting delivery now (the same delivery id); 409 once it was sent."""
        async with self.pool.connection() as conn:
            found = await repo.get_delivery(conn, ident)
            if found is None:
                raise NotFound(f"no delivery {ident}")
            require(principal, Scope.OPERATOR, found.site)
            if not await repo.retry_now(conn, ident):
                raise Conflict(f"delivery {ident} was sent already", code="delivery_sent")
            await audit.record(conn, principal, "delivery.retry", "delivery", ident)
        return await self.get(principal, ident)
