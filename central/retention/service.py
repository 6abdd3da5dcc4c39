"""The retention policies' API rules: viewers read the policy in force at their sites, admins change a
site's (keys allowed on it) or the defaults (unrestricted keys). Every change is audited. A change of a
site's crop policy between "none" (0 days) and some days queues a `reload_config` command carrying the
crop policy to the site's edges (central/distribution/ publishes it), so an edge of a site that keeps
no crops sends none."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import AsyncConnection

from central import audit
from central.db.pool import AsyncPool
from central.errors import InvalidInput, NotFound
from central.principal import Principal, Scope, require, require_scope
from central.retention import repository as repo
from central.retention.policy import Policy
from central.retention.schemas import DefaultsRead, DefaultsWrite, SitePolicyRead, SitePolicyWrite


class RetentionService:
    def __init__(self, pool: AsyncPool) -> None:
        self.pool = pool

    async def get_defaults(self, principal: Principal) -> DefaultsRead:
        require_scope(principal, Scope.VIEWER)
        async with self.pool.connection() as conn:
            return await repo.defaults(conn)

    async def set_defaults(self, principal: Principal, data: DefaultsWrite) -> DefaultsRead:
        require(principal, Scope.ADMIN, None)
        if data.crops_days > data.events_days:
            raise _crops_too_long(data.crops_days, data.events_days)
        async with self.pool.connection() as conn:
            before = await repo.policies(conn)
            found = await repo.set_defaults(conn, data)
            await audit.record(conn, principal, "retention.defaults", "retention", "defaults",
                               details=msgspec.to_builtins(data))  # fmt: skip
            after = await repo.policies(conn)
            changed = [
                s for s in await _all_sites(conn) if _crops_off(before.of(s)) != _crops_off(after.of(s))
            ]
            await _queue_crop_commands(conn, changed, after)
        return found

    async def get_site(self, principal: Principal, site: str) -> SitePolicyRead:
        require(principal, Scope.VIEWER, site)
        async with self.pool.connection() as conn:
            return await _read_site(conn, site)

    async def set_site(self, principal: Principal, site: str, data: SitePolicyWrite) -> SitePolicyRead:
        require(principal, Scope.ADMIN, site)
        async with self.pool.connection() as conn:
            if site not in await _all_sites(conn):
                raise NotFound(f"no site {site!r}")
            before = (await repo.policies(conn)).of(site)
            await repo.set_site(conn, site, data)
            policies = await repo.policies(conn)
            after = policies.of(site)
            own_crops = data.crops_days
            if own_crops is not None and own_crops > after.events_days:
                raise _crops_too_long(own_crops, after.events_days)
            await audit.record(
                conn, principal, "retention.site", "site", site, details=msgspec.to_builtins(data)
            )
            if _crops_off(before) != _crops_off(after):
                await _queue_crop_commands(conn, [site], policies)
            return await _read_site(conn, site)


def _crops_off(policy: Policy) -> bool:
    return policy.crops_days == 0


def _crops_too_long(crops: int, events: int) -> InvalidInput:
    return InvalidInput(
        f"crops_days {crops} is longer than events_days {events}: crops go with their events",
        code="crops_outlive_events",
    )


async def _all_sites(conn: AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute("SELECT id FROM sites ORDER BY id")
    return [row[0] for row in await cur.fetchall()]


async def _read_site(conn: AsyncConnection[Any], site: str) -> SitePolicyRead:
    policy = (await repo.policies(conn)).of(site)
    return SitePolicyRead(
        site=site,
        events_days=policy.events_days,
        crops_days=policy.crops_days,
        dead_letters_days=policy.dead_letters_days,
        deliveries_days=policy.deliveries_days,
        own=await repo.site_own(conn, site),
    )


async def _queue_crop_commands(conn: AsyncConnection[Any], sites: list[str], policies: Any) -> None:
    """One `reload_config` command per crop policy for the edges of `sites` (published after commit)."""
    for value in ("none", "device"):
        chosen = [s for s in sites if (policies.of(s).crops_days == 0) == (value == "none")]
        if chosen:
            await conn.execute(
                "INSERT INTO distribution_commands (action, crop_policy, sites)"
                " VALUES ('reload_config', %s, %s)",
                (value, chosen),
            )
