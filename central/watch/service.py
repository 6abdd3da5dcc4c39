"""The watch service: watchlists and watch rules, with roles, site scope and audit.

Watchlists span sites: viewers read them, unrestricted operators change them. Rules: viewers read those
of their sites, operators create and change rules on their sites (a rule for every site needs an
unrestricted key), and only admins set or change a webhook target, which `check_url` (the webhook
sender's SSRF policy, injected by the composition root) accepts first. A webhook's signing secret is
made here, returned once at creation, and never logged or audited.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import anyio.to_thread
import msgspec
from psycopg import AsyncConnection

from central import audit
from central.auth import mosquitto_hash
from central.broker.acl import NOTIFY_FILTER
from central.db.pool import AsyncPool
from central.errors import Conflict, Forbidden, InvalidInput, NotFound
from central.principal import Principal, Scope, require, require_scope
from central.watch import repository as repo
from central.watch.schemas import (
    MqttLogin,
    RuleCreated,
    RuleRead,
    RuleWrite,
    WatchlistCreate,
    WatchlistRead,
    WatchlistUpdate,
)

INTEGRATION_USER = "facegate-integrations"
"""The integrations' broker username (a slug: never an edge's `site/edge`)."""

CheckUrl = Callable[[str], Awaitable[None]]
"""Raises InvalidInput when a webhook target is not allowed (central/notify/targets.py)."""


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WatchService:
    def __init__(self, pool: AsyncPool, check_url: CheckUrl) -> None:
        self.pool = pool
        self.check_url = check_url

    # --- watchlists -------------------------------------------------------------------------------------

    async def list_watchlists(self, principal: Principal) -> list[WatchlistRead]:
        require_scope(principal, Scope.VIEWER)
        async with self.pool.connection() as conn:
            return await repo.list_watchlists(conn)

    async def get_watchlist(self, principal: Principal, ident: UUID) -> WatchlistRead:
        require_scope(principal, Scope.VIEWER)
        async with self.pool.connection() as conn:
            found = await repo.get_watchlist(conn, ident)
        if found is None:
            raise NotFound(f"no watchlist {ident}")
        return found

    async def create_watchlist(self, principal: Principal, data: WatchlistCreate) -> WatchlistRead:
        require(principal, Scope.OPERATOR, None)
        async with self.pool.connection() as conn:
            await _check_people(conn, data.people)
            ident = await repo.create_watchlist(conn, data.name)
            if ident is None:
                raise Conflict(f"a watchlist is already named {data.name!r}", code="watchlist_exists")
            await repo.set_members(conn, ident, data.people)
            await audit.record(
                conn, principal, "watchlist.create", "watchlist", ident, details=_list_details(data)
            )
            found = await repo.get_watchlist(conn, ident)
        assert found is not None
        return found

    async def update_watchlist(
        self, principal: Principal, ident: UUID, data: WatchlistUpdate
    ) -> WatchlistRead:
        require(principal, Scope.OPERATOR, None)
        async with self.pool.connection() as conn:
            if await repo.get_watchlist(conn, ident) is None:
                raise NotFound(f"no watchlist {ident}")
            if data.name is not None and not await repo.rename_watchlist(conn, ident, data.name):
                raise Conflict(f"a watchlist is already named {data.name!r}", code="watchlist_exists")
            if data.people is not None:
                await _check_people(conn, data.people)
                await repo.set_members(conn, ident, data.people)
            await audit.record(
                conn, principal, "watchlist.update", "watchlist", ident, details=_list_details(data)
            )
            found = await repo.get_watchlist(conn, ident)
        assert found is not None
        return found

    async def delete_watchlist(self, principal: Principal, ident: UUID) -> None:
        require(principal, Scope.OPERATOR, None)
        async with self.pool.connection() as conn:
            if not await repo.delete_watchlist(conn, ident):
                raise NotFound(f"no watchlist {ident}")
            await audit.record(conn, principal, "watchlist.delete", "watchlist", ident)

    # --- rules ------------------------------------------------------------------------------------------

    async def list_rules(self, principal: Principal) -> list[RuleRead]:
        require_scope(principal, Scope.VIEWER)
        async with self.pool.connection() as conn:
            return await repo.list_rules(conn, principal.sites or None)

    async def get_rule(self, principal: Principal, ident: UUID) -> RuleRead:
        async with self.pool.connection() as conn:
            found = await repo.get_rule(conn, ident)
        if found is None:
            raise NotFound(f"no watch rule {ident}")
        _require_rule(principal, Scope.VIEWER, found.sites)
        return found

    async def create_rule(self, principal: Principal, data: RuleWrite) -> RuleCreated:
        _require_rule(principal, Scope.OPERATOR, data.sites)
        secret = None
        if data.webhook_url is not None:
            _require_admin_for_webhook(principal)
            await self.check_url(data.webhook_url)
            secret = new_secret()
        async with self.pool.connection() as conn:
            await _check_rule(conn, data)
            rule = await repo.create_rule(conn, data, secret)
            await audit.record(
                conn, principal, "watch_rule.create", "watch_rule", rule.id, details=_rule_details(data)
            )
        return RuleCreated(rule=rule, webhook_secret=secret)

    async def replace_rule(self, principal: Principal, ident: UUID, data: RuleWrite) -> RuleRead:
        """Replace a rule; its webhook secret is kept while it has a webhook (a new one is made, and
        returned by `GET .../webhook-secret` to admins, when a webhook is added)."""
        _require_rule(principal, Scope.OPERATOR, data.sites)
        async with self.pool.connection() as conn:
            old = await repo.get_rule(conn, ident, lock=True)
            if old is None:
                raise NotFound(f"no watch rule {ident}")
            _require_rule(principal, Scope.OPERATOR, old.sites)
            if data.webhook_url != old.webhook_url:
                _require_admin_for_webhook(principal)
                if data.webhook_url is not None:
                    await self.check_url(data.webhook_url)
            await _check_rule(conn, data)
            secret = None
            if data.webhook_url is not None:
                secret = await repo.webhook_secret(conn, ident) or new_secret()
            rule = await repo.replace_rule(conn, ident, data, secret)
            assert rule is not None
            await audit.record(
                conn, principal, "watch_rule.update", "watch_rule", ident, details=_rule_details(data)
            )
        return rule

    async def webhook_secret(self, principal: Principal, ident: UUID) -> str:
        """The rule's signing secret, for admins allowed on all its sites (audited, never logged)."""
        async with self.pool.connection() as conn:
            rule = await repo.get_rule(conn, ident)
            if rule is None:
                raise NotFound(f"no watch rule {ident}")
            _require_rule(principal, Scope.ADMIN, rule.sites)
            secret = await repo.webhook_secret(conn, ident)
            if secret is None:
                raise NotFound(f"watch rule {ident} has no webhook", code="no_webhook")
            await audit.record(conn, principal, "watch_rule.read_secret", "watch_rule", ident)
        return secret

    async def mqtt_login(self, principal: Principal) -> MqttLogin:
        """A new password for the integrations' broker login (unrestricted admins; replaces the old one).
        It reaches the broker with its next `facegate central broker-config` (docs/central-broker.md)."""
        require(principal, Scope.ADMIN, None)
        password = secrets.token_urlsafe(24)
        hashed = await anyio.to_thread.run_sync(mosquitto_hash, password)
        async with self.pool.connection() as conn:
            await repo.set_integration_login(conn, INTEGRATION_USER, hashed)
            await audit.record(conn, principal, "integration_login.rotate", "broker_login", INTEGRATION_USER)
        return MqttLogin(username=INTEGRATION_USER, password=password, topic_filter=NOTIFY_FILTER)

    async def delete_rule(self, principal: Principal, ident: UUID) -> None:
        async with self.pool.connection() as conn:
            rule = await repo.get_rule(conn, ident, lock=True)
            if rule is None:
                raise NotFound(f"no watch rule {ident}")
            _require_rule(principal, Scope.OPERATOR, rule.sites)
            if rule.webhook_url is not None:
                _require_admin_for_webhook(principal)
            await repo.delete_rule(conn, ident)
            await audit.record(conn, principal, "watch_rule.delete", "watch_rule", ident)


def _require_rule(principal: Principal, needed: Scope, sites: list[str]) -> None:
    """A rule on every site needs an unrestricted key; otherwise the key must be allowed on each."""
    if not sites:
        require(principal, needed, None)
    for site in sites:
        require(principal, needed, site)


def _require_admin_for_webhook(principal: Principal) -> None:
    if principal.scope is not Scope.ADMIN:
        raise Forbidden(
            "webhook_admin_only",
            f"key {principal.id} has scope {principal.scope}; only admins set webhook targets",
        )


async def _check_people(conn: AsyncConnection[Any], people: list[UUID]) -> None:
    missing = await repo.missing_people(conn, people)
    if missing:
        raise InvalidInput(
            f"no such people (or erased): {', '.join(map(str, missing[:10]))}", code="unknown_people"
        )


async def _check_rule(conn: AsyncConnection[Any], data: RuleWrite) -> None:
    if not (data.people or data.watchlists or data.unknown):
        raise InvalidInput("a rule must name people, watchlists or unknown faces", code="rule_watches_no_one")
    if data.when.start_minute == data.when.end_minute:
        raise InvalidInput("the rule's window is empty: start_minute equals end_minute", code="empty_window")
    await _check_people(conn, data.people)
    lists = await repo.missing_watchlists(conn, data.watchlists)
    if lists:
        raise InvalidInput(
            f"no such watchlists: {', '.join(map(str, lists[:10]))}", code="unknown_watchlists"
        )
    sites = await repo.missing_sites(conn, data.sites)
    if sites:
        raise InvalidInput(f"no such sites: {', '.join(sites[:10])}", code="unknown_sites")


def _list_details(data: WatchlistCreate | WatchlistUpdate) -> dict[str, Any]:
    return {"name": data.name, "people": len(data.people) if data.people is not None else None}


def _rule_details(data: RuleWrite) -> dict[str, Any]:
    """What the audit log keeps of a rule: everything but its e-mail addresses and webhook query."""
    details: dict[str, Any] = msgspec.to_builtins(data)
    details["email_to"] = len(data.email_to)
    if data.webhook_url is not None:
        details["webhook_url"] = data.webhook_url.split("?", 1)[0]
    return details
