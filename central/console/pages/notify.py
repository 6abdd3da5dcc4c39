"""Watchlists and watch rules, the delivery log, and retention policies: the console's forms over the
same services as the API (central/watch/, central/notify/, central/retention/), so the same roles, site
scope, audit and error messages apply. A rule's webhook secret is shown once, when it is created."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import Redirect, Template

from central.console.rendering import page, principal_of, see_other
from central.errors import InvalidInput
from central.fleet.service import FleetService
from central.notify.schemas import DeliveryStatus
from central.notify.service import DeliveryService
from central.retention.schemas import DefaultsWrite, SitePolicyWrite
from central.retention.service import RetentionService
from central.watch.schemas import RuleWrite, WatchlistCreate
from central.watch.service import WatchService

_T = TypeVar("_T")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _convert(fields: dict[str, Any], kind: type[_T], what: str) -> _T:
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as err:
        raise InvalidInput(f"{what}: {err}") from err


def _list(value: object) -> list[str]:
    return [part.strip() for part in str(value or "").replace("\n", ",").split(",") if part.strip()]


def _whole(value: object, default: int, what: str) -> int:
    text = str(value or "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise InvalidInput(f"{what}: a whole number of seconds")
    return int(text)


def _minute(value: object, default: int) -> int:
    """`HH:MM` from a time input (24:00 allowed for the end of the day) as minutes."""
    text = str(value or "").strip()
    if not text:
        return default
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit()):
        raise InvalidInput(f"time {text!r}: use HH:MM")
    return int(hours) * 60 + int(minutes)


@get("/watch")
async def watch_page(request: Request[Any, Any, Any], watch: NamedDependency[WatchService]) -> Template:
    principal = principal_of(request)
    return page(
        request,
        "watch",
        watchlists=await watch.list_watchlists(principal),
        rules=await watch.list_rules(principal),
        days=DAY_NAMES,
        created=None,
    )


@post("/watchlists")
async def create_watchlist(request: Request[Any, Any, Any], watch: NamedDependency[WatchService]) -> Redirect:
    form = await request.form()
    data = _convert({"name": str(form.get("name", "")).strip(), "people": _list(form.get("people"))},
                    WatchlistCreate, "the watchlist")  # fmt: skip
    await watch.create_watchlist(principal_of(request), data)
    return see_other("/console/watch")


@post("/watch-rules")
async def create_rule(request: Request[Any, Any, Any], watch: NamedDependency[WatchService]) -> Template:
    form = await request.form()
    fields: dict[str, Any] = {
        "name": str(form.get("name", "")).strip(),
        "watchlists": form.getall("watchlists", []),
        "unknown": form.get("unknown") == "on",
        "sites": _list(form.get("sites")),
        "cameras": _list(form.get("cameras")),
        "when": {
            "days": [int(d) for d in form.getall("days", []) if str(d).isdigit()],
            "start_minute": _minute(form.get("start"), 0),
            "end_minute": _minute(form.get("end"), 1440),
        },
        "cooldown_s": _whole(form.get("cooldown_s"), 60, "cooldown"),
        "email_to": _list(form.get("email_to")),
        "mqtt": form.get("mqtt") == "on",
    }
    if str(form.get("webhook_url", "")).strip():
        fields["webhook_url"] = str(form.get("webhook_url")).strip()
    principal = principal_of(request)
    created = await watch.create_rule(principal, _convert(fields, RuleWrite, "the rule"))
    return page(
        request,
        "watch",
        watchlists=await watch.list_watchlists(principal),
        rules=await watch.list_rules(principal),
        days=DAY_NAMES,
        created=created,
    )


@post("/watch-rules/{ident:uuid}/delete")
async def delete_rule(
    request: Request[Any, Any, Any], ident: FromPath[UUID], watch: NamedDependency[WatchService]
) -> Redirect:
    await watch.delete_rule(principal_of(request), ident)
    return see_other("/console/watch")


@get("/deliveries")
async def deliveries_page(
    request: Request[Any, Any, Any],
    deliveries: NamedDependency[DeliveryService],
    rule: Annotated[UUID | None, Parameter()] = None,
    status: Annotated[DeliveryStatus | None, Parameter()] = None,
) -> Template:
    listed = await deliveries.list(principal_of(request), rule, status, 200, None)
    return page(request, "deliveries", items=listed.items, rule=rule, chosen=status or "")


@post("/deliveries/{ident:uuid}/retry")
async def retry_delivery(
    request: Request[Any, Any, Any], ident: FromPath[UUID], deliveries: NamedDependency[DeliveryService]
) -> Redirect:
    await deliveries.retry(principal_of(request), ident)
    return see_other("/console/deliveries")


@get("/retention")
async def retention_page(
    request: Request[Any, Any, Any],
    retention: NamedDependency[RetentionService],
    fleet: NamedDependency[FleetService],
) -> Template:
    principal = principal_of(request)
    sites = [await retention.get_site(principal, s.id) for s in await fleet.list_sites(principal)]
    return page(request, "retention", defaults=await retention.get_defaults(principal), sites=sites)


def _days(form: Any, names: tuple[str, ...]) -> dict[str, int | None]:
    values: dict[str, int | None] = {}
    for name in names:
        text = str(form.get(name, "")).strip()
        if text and not text.isdigit():
            raise InvalidInput(f"{name.replace('_', ' ')}: a whole number of days")
        values[name] = int(text) if text else None
    return values


@post("/retention")
async def set_defaults(
    request: Request[Any, Any, Any], retention: NamedDependency[RetentionService]
) -> Redirect:
    names = ("events_days", "crops_days", "audit_days", "dead_letters_days", "deliveries_days")
    values = {k: v for k, v in _days(await request.form(), names).items() if v is not None}
    await retention.set_defaults(principal_of(request), _convert(values, DefaultsWrite, "the defaults"))
    return see_other("/console/retention")


@post("/sites/{site:str}/retention")
async def set_site(
    request: Request[Any, Any, Any], site: FromPath[str], retention: NamedDependency[RetentionService]
) -> Redirect:
    names = ("events_days", "crops_days", "dead_letters_days", "deliveries_days")
    data = _convert(_days(await request.form(), names), SitePolicyWrite, f"site {site}'s policy")
    await retention.set_site(principal_of(request), site, data)
    return see_other("/console/retention")


ROUTES = [
    watch_page,
    create_watchlist,
    create_rule,
    delete_rule,
    deliveries_page,
    retry_delivery,
    retention_page,
    set_defaults,
    set_site,
]
