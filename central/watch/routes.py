"""HTTP routes of watchlists and watch rules (mounted under /api/v1 by central/app.py). The rules of who
may do what are in central/watch/service.py."""

from __future__ import annotations

from uuid import UUID

from litestar import delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.types import ControllerRouterHandler

from central.principal import Principal, Scope
from central.watch.schemas import (
    MqttLogin,
    RuleCreated,
    RuleRead,
    RuleWrite,
    WatchlistCreate,
    WatchlistRead,
    WatchlistUpdate,
)
from central.watch.service import WatchService

TAGS = ["notifications"]


@get("/watchlists", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_watchlists(
    principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> list[WatchlistRead]:
    return await watch.list_watchlists(principal)


@post("/watchlists", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def create_watchlist(
    data: JSONBody[WatchlistCreate],
    principal: NamedDependency[Principal],
    watch: NamedDependency[WatchService],
) -> WatchlistRead:
    """A named list of people (unrestricted operator keys); 409 when the name is taken."""
    return await watch.create_watchlist(principal, data)


@get("/watchlists/{ident:uuid}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_watchlist(
    ident: FromPath[UUID], principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> WatchlistRead:
    return await watch.get_watchlist(principal, ident)


@patch("/watchlists/{ident:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def update_watchlist(
    ident: FromPath[UUID],
    data: JSONBody[WatchlistUpdate],
    principal: NamedDependency[Principal],
    watch: NamedDependency[WatchService],
) -> WatchlistRead:
    """Rename it and/or replace its members."""
    return await watch.update_watchlist(principal, ident, data)


@delete("/watchlists/{ident:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS, status_code=204)
async def delete_watchlist(
    ident: FromPath[UUID], principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> None:
    await watch.delete_watchlist(principal, ident)


@get("/watch-rules", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def list_rules(
    principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> list[RuleRead]:
    """Every rule the key may see (a restricted key: the rules on its sites only)."""
    return await watch.list_rules(principal)


@post("/watch-rules", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def create_rule(
    data: JSONBody[RuleWrite], principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> RuleCreated:
    """A rule; with a webhook (admins only) the response holds its signing secret, this once."""
    return await watch.create_rule(principal, data)


@get("/watch-rules/{ident:uuid}", opt={"scope": Scope.VIEWER}, tags=TAGS)
async def get_rule(
    ident: FromPath[UUID], principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> RuleRead:
    return await watch.get_rule(principal, ident)


@put("/watch-rules/{ident:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS)
async def replace_rule(
    ident: FromPath[UUID],
    data: JSONBody[RuleWrite],
    principal: NamedDependency[Principal],
    watch: NamedDependency[WatchService],
) -> RuleRead:
    return await watch.replace_rule(principal, ident, data)


@get("/watch-rules/{ident:uuid}/webhook-secret", opt={"scope": Scope.ADMIN}, tags=TAGS)
async def webhook_secret(
    ident: FromPath[UUID], principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> dict[str, str]:
    """The rule's webhook signing secret (admins; the read is audited)."""
    return {"webhook_secret": await watch.webhook_secret(principal, ident)}


@post("/watch-rules/mqtt-login", opt={"scope": Scope.ADMIN}, tags=TAGS, status_code=200)
async def mqtt_login(
    principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> MqttLogin:
    """A new password for the read-only broker login of integrations (the old one stops working at the
    broker's next reload); shown this once."""
    return await watch.mqtt_login(principal)


@delete("/watch-rules/{ident:uuid}", opt={"scope": Scope.OPERATOR}, tags=TAGS, status_code=204)
async def delete_rule(
    ident: FromPath[UUID], principal: NamedDependency[Principal], watch: NamedDependency[WatchService]
) -> None:
    """Delete a rule and its pending deliveries and delivery log."""
    await watch.delete_rule(principal, ident)


ROUTES: list[ControllerRouterHandler] = [
    list_watchlists,
    create_watchlist,
    get_watchlist,
    update_watchlist,
    delete_watchlist,
    list_rules,
    create_rule,
    get_rule,
    replace_rule,
    webhook_secret,
    mqtt_login,
    delete_rule,
]
