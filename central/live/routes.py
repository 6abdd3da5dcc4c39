"""`/ws/events`: a WebSocket streaming ingested events, each as `{"type": "event", "event": {...}}`.

Authentication (browsers cannot set headers on a WebSocket): an `Authorization: Bearer ...` header,
or a `token` query parameter holding the same credential (prefer a short-lived token from
POST /api/v1/auth/token there: URLs end up in logs). API keys of scope viewer or above only; edge
credentials are refused. Filters: `site` (repeatable) and `person` (a person id). A refused
connection is accepted and closed at once with 4401 (bad credential), 4403 (not allowed) or 4400
(bad filter) and a reason, which browsers can read. Idle connections get `{"type": "ping"}` every
`ws_ping_s` seconds. A client whose queue overflows is closed with 1013 (central/live/hub.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from typing import Any

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from central.auth.errors import AuthError
from central.auth.service import AuthService
from central.errors import Forbidden, TooManyRequests
from central.live.hub import Client
from central.live.service import LiveService
from central.principal import Principal, Scope, require_scope

log = logging.getLogger("central.live")

PATH = "/ws/events"
PING = '{"type":"ping"}'
CLOSE_TIMEOUT_S = 10.0
"""How long the close frame of a dropped client may wait for its socket to drain."""
_SLUG = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CODE_BAD_REQUEST, CODE_UNAUTHORIZED, CODE_FORBIDDEN, CODE_TRY_LATER = 4400, 4401, 4403, 1013


class _Refused(Exception):  # noqa: N818 - an outcome, turned into a close code below
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason is at most 123 bytes


@websocket(PATH, tags=["live"])
async def events_socket(
    socket: WebSocket[Any, Any, Any], auth: NamedDependency[AuthService], live: NamedDependency[LiveService]
) -> None:
    """Stream the events of the sites this key may see, optionally filtered by site and person."""
    try:
        principal = await _authenticate(auth, socket)
        sites, person = _filters(socket, principal)
    except _Refused as refusal:
        await socket.accept()
        await socket.close(refusal.code, refusal.reason)
        return
    await socket.accept()
    client = live.connect(principal, sites, person)
    try:
        await _serve(socket, client, live.ping_s)
    finally:
        live.disconnect(client)


async def _authenticate(auth: AuthService, socket: WebSocket[Any, Any, Any]) -> Principal:
    header = socket.headers.get("authorization")
    token = socket.query_params.get("token")
    try:
        client = socket.client.host if socket.client else None
        principal = await auth.admit(header or (f"Bearer {token}" if token else None), client)
    except AuthError as err:
        raise _Refused(CODE_UNAUTHORIZED, f"{err.reason}: {err}") from err
    except TooManyRequests as err:
        raise _Refused(CODE_TRY_LATER, "rate limit exceeded for this key; retry later") from err
    try:
        require_scope(principal, Scope.VIEWER)
    except Forbidden as err:
        raise _Refused(CODE_FORBIDDEN, f"{err.reason}: {err}") from err
    return principal


def _filters(socket: WebSocket[Any, Any, Any], principal: Principal) -> tuple[list[str], str | None]:
    sites = socket.query_params.getall("site", [])
    for site in sites:
        if not _SLUG.fullmatch(site):
            raise _Refused(CODE_BAD_REQUEST, "site: expected a site id (letters, digits, _ . -)")
        if not principal.allows_site(site):
            raise _Refused(CODE_FORBIDDEN, f"site_not_allowed: key {principal.id} may not see site {site!r}")
    person = socket.query_params.get("person")
    if person is not None:
        try:
            person = str(uuid.UUID(person))
        except ValueError as err:
            raise _Refused(CODE_BAD_REQUEST, "person: expected a person id (a UUID)") from err
    return sites, person


async def _serve(socket: WebSocket[Any, Any, Any], client: Client, ping_s: float) -> None:
    """Send until the client leaves, a send fails, or the hub drops the client (then close with 1013)."""
    sender = asyncio.create_task(_send_loop(socket, client, ping_s))
    reader = asyncio.create_task(_read_loop(socket))
    dropped = asyncio.create_task(client.dropped.wait())
    tasks = {sender, reader, dropped}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if client.dropped.is_set():
        reason = f"too slow: more than {client.queue.maxsize} events waiting; reconnect and read faster"
        with contextlib.suppress(TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
            await asyncio.wait_for(socket.close(CODE_TRY_LATER, reason[:120]), CLOSE_TIMEOUT_S)


async def _send_loop(socket: WebSocket[Any, Any, Any], client: Client, ping_s: float) -> None:
    while True:
        try:
            frame = await asyncio.wait_for(client.queue.get(), ping_s)
        except TimeoutError:
            frame = PING
        await socket.send_text(frame)


async def _read_loop(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends, until it disconnects."""
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
