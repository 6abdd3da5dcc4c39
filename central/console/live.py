"""`/console/live`: the events page's WebSocket. New events arrive as table rows htmx inserts at the top.

Authenticated by the session cookie (the console guard ran before the handshake; no key in the URL),
and the handshake's `Origin` must be this console's: another site's page cannot open it with the
user's cookie. It reuses central's live fan-out (central/live/): the same hub, the same site checks of
the key, the same dropping of a client too slow to read. Filters: `site`, `person` (by the hub),
`camera` and `unknown` (here). Each event is rendered by the events page's row template, escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from typing import Any

import msgspec
from jinja2 import Environment
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from central.console.security import origin_allowed
from central.console.service import Session
from central.events.schemas import EventRead
from central.live.hub import Client
from central.live.service import LiveService
from central.people.service import PeopleService

log = logging.getLogger("central.console")

CODE_BAD_REQUEST, CODE_FORBIDDEN, CODE_TRY_LATER = 4400, 4403, 1013
_SLUG = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FRAME = msgspec.json.Decoder(dict[str, Any])


class Filters(msgspec.Struct, frozen=True):
    sites: list[str]
    person: str | None
    camera: str | None
    unknown: bool

    def wants(self, event: EventRead) -> bool:
        if self.camera is not None and event.camera != self.camera:
            return False
        return not (self.unknown and event.person_id is not None)


def filters(socket: WebSocket[Any, Any, Any]) -> Filters | None:
    """The page's filters from the query; None when one is malformed."""
    site = socket.query_params.get("site")
    person = socket.query_params.get("person")
    camera = socket.query_params.get("camera")
    if site is not None and not _SLUG.fullmatch(site):
        return None
    if camera is not None and not 0 < len(camera) <= 200:
        return None
    if person is not None:
        try:
            person = str(uuid.UUID(person))
        except ValueError:
            return None
    return Filters([site] if site else [], person, camera, bool(socket.query_params.get("unknown")))


@websocket("/live")
async def console_live(
    socket: WebSocket[Any, Any, Any],
    live: NamedDependency[LiveService],
    people: NamedDependency[PeopleService],
) -> None:
    session = socket.state.console_session
    assert isinstance(session, Session)
    await socket.accept()
    if not origin_allowed(socket):
        await socket.close(CODE_FORBIDDEN, "bad_origin: open the console from its own address")
        return
    wanted = filters(socket)
    if wanted is None:
        await socket.close(CODE_BAD_REQUEST, "bad filter: site, camera or person is malformed")
        return
    if any(not session.principal.allows_site(site) for site in wanted.sites):
        await socket.close(CODE_FORBIDDEN, "site_not_allowed")
        return
    engine = socket.app.template_engine
    assert engine is not None
    env: Environment = engine.engine
    client = live.connect(session.principal, wanted.sites, wanted.person)
    try:
        await _serve(socket, client, wanted, people, env)
    finally:
        live.disconnect(client)


async def _serve(
    socket: WebSocket[Any, Any, Any], client: Client, wanted: Filters, people: PeopleService, env: Environment
) -> None:
    sender = asyncio.create_task(_send_rows(socket, client, wanted, people, env))
    reader = asyncio.create_task(_read_until_closed(socket))
    dropped = asyncio.create_task(client.dropped.wait())
    tasks = {sender, reader, dropped}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if client.dropped.is_set():
        with contextlib.suppress(TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
            await asyncio.wait_for(socket.close(CODE_TRY_LATER, "too slow; reload the page"), 10.0)


async def _send_rows(
    socket: WebSocket[Any, Any, Any], client: Client, wanted: Filters, people: PeopleService, env: Environment
) -> None:
    row = env.get_template("event_row.html.j2")
    while True:
        frames = [await client.queue.get()]
        while not client.queue.empty():
            frames.append(client.queue.get_nowait())
        events = [e for e in map(_event, frames) if e is not None and wanted.wants(e)]
        if not events:
            continue
        events.sort(key=lambda e: (e.ts, e.id), reverse=True)  # newest at the top, as on the page
        names = await people.names([e.person_id for e in events if e.person_id is not None])
        rows = "".join(
            row.render(event=e, name=names.get(e.person_id) if e.person_id else None) for e in events
        )
        await socket.send_text(f'<tbody id="event-rows" hx-swap-oob="afterbegin">{rows}</tbody>')


def _event(frame: str) -> EventRead | None:
    """The event of a hub frame; None for anything else (a malformed one is logged and skipped)."""
    try:
        message = _FRAME.decode(frame)
        if message.get("type") != "event":
            return None
        return msgspec.convert(message.get("event"), EventRead, strict=False)
    except msgspec.MsgspecError as err:
        log.warning("console_live_event_malformed", extra={"error": str(err)[:200]})
        return None


async def _read_until_closed(socket: WebSocket[Any, Any, Any]) -> None:
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
