"""Live events over /ws/events: authentication, site limits, fan-out between two replicas through
Redis, and a slow client dropped (real uvicorn, a raw socket that never reads)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import WebSocketTestSession
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from central.auth.repository import create_key_sync
from central.live.hub import LiveHub, live_events
from central.live.service import LiveService, encode_batch
from central.metrics import LiveMetrics
from central.principal import Principal, Scope
from central.settings import CentralSettings
from devtools.services.central import serve
from tests.integration.central.test_fleet import make_site, register
from tests.support.central_app import Central, start_central

WAIT_S = 10.0


@pytest.fixture
def live_settings(central_settings: CentralSettings) -> CentralSettings:
    """A channel of this test's own: pub/sub channels are shared by every database of a Redis server."""
    return replace(central_settings, live_channel=f"facegate:events:test-{uuid.uuid4().hex}")


@pytest.fixture
def live(live_settings: CentralSettings) -> Iterator[Central]:
    yield from start_central(live_settings)


def event(site: str, person: str | None = None) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "site": site, "edge": "e1", "camera": "door", "kind": "recognized",
            "person_id": person, "score": 0.8, "ts": "2026-01-01T00:00:00Z"}  # fmt: skip


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def wait_subscribed(central: Central) -> None:
    deadline = time.monotonic() + WAIT_S
    while metric(central.client.get("/metrics").text, "facegate_live_subscribed") != 1:
        assert time.monotonic() < deadline, "the replica did not subscribe to its Redis channel"
        time.sleep(0.05)


def publish(central: Central, events: Sequence[Mapping[str, Any]]) -> None:
    """The live service's publish on this replica's event loop, as ingest calls it."""
    live: LiveService = central.client.app.state.live
    with central.client.portal() as portal:
        portal.call(live.publish, events)


def connect(central: Central, credential: str | None, query: str = "") -> WebSocketTestSession:
    headers = central.as_(credential) if credential else {}
    return central.client.websocket_connect(f"/ws/events{query}", headers=headers)


def refusal(central: Central, credential: str | None, query: str = "") -> tuple[int, str]:
    with connect(central, credential, query) as ws, pytest.raises(WebSocketDisconnect) as refused:
        ws.receive_text(timeout=WAIT_S)
    return refused.value.code, str(refused.value.detail)


def test_live_viewer_key_receives_a_published_event(live: Central) -> None:
    sent = event("s1")
    with connect(live, live.key("viewer")) as ws:
        wait_subscribed(live)
        publish(live, [sent])
        frame = ws.receive_json(timeout=WAIT_S)
    assert frame["type"] == "event"
    assert frame["event"]["id"] == str(sent["id"])
    assert frame["event"]["site"] == "s1"


def test_live_token_in_the_query_string_is_accepted(live: Central) -> None:
    token = live.client.post("/api/v1/auth/token", headers=live.as_(live.key("viewer"))).json()[
        "access_token"
    ]
    sent = event("s1")
    with connect(live, None, f"?token={token}") as ws:
        wait_subscribed(live)
        publish(live, [sent])
        assert ws.receive_json(timeout=WAIT_S)["event"]["id"] == str(sent["id"])


def test_live_without_credentials_is_refused_with_4401(live: Central) -> None:
    code, reason = refusal(live, None)
    assert code == 4401
    assert reason.startswith("missing_credential")


def test_live_bad_key_is_refused_with_4401(live: Central) -> None:
    assert refusal(live, "fg_abcdefgh_" + "A" * 43)[0] == 4401


def test_live_edge_credential_is_refused_with_4403(live: Central) -> None:
    make_site(live, "s1")
    edge_key = register(live, "s1", "e1")["credentials"]["api_key"]
    code, reason = refusal(live, edge_key)
    assert code == 4403
    assert reason.startswith("edge_only")


def test_live_site_filter_outside_the_keys_sites_is_refused(live: Central) -> None:
    assert refusal(live, live.key("viewer", ["s1"]), "?site=s2")[0] == 4403


def test_live_malformed_person_filter_is_refused_with_4400(live: Central) -> None:
    assert refusal(live, live.key("viewer"), "?person=nope")[0] == 4400


def test_live_site_restricted_key_gets_only_its_sites_events(live: Central) -> None:
    other, own = event("s2"), event("s1")
    with connect(live, live.key("viewer", ["s1"])) as ws:
        wait_subscribed(live)
        publish(live, [other, own])
        assert ws.receive_json(timeout=WAIT_S)["event"]["id"] == str(own["id"])


def test_live_person_filter_skips_other_people(live: Central) -> None:
    person = str(uuid.uuid4())
    other, wanted = event("s1", str(uuid.uuid4())), event("s1", person)
    with connect(live, live.key("viewer"), f"?person={person}&site=s1") as ws:
        wait_subscribed(live)
        publish(live, [other, wanted])
        assert ws.receive_json(timeout=WAIT_S)["event"]["id"] == str(wanted["id"])


def test_live_without_redis_delivers_in_process(live_settings: CentralSettings) -> None:
    for central in start_central(replace(live_settings, redis_url=None)):
        sent = event("s1")
        with connect(central, central.key("viewer")) as ws:
            publish(central, [sent])
            assert ws.receive_json(timeout=WAIT_S)["event"]["id"] == str(sent["id"])


def test_live_client_on_one_replica_gets_events_another_replica_published(
    live_settings: CentralSettings,
) -> None:
    sent = event("s1")
    for first in start_central(live_settings):
        for second in start_central(live_settings):
            with connect(first, first.key("viewer")) as ws:
                wait_subscribed(first)
                publish(second, [sent])
                assert ws.receive_json(timeout=WAIT_S)["event"]["id"] == str(sent["id"])


def test_live_idle_client_gets_pings(live_settings: CentralSettings) -> None:
    for central in start_central(replace(live_settings, ws_ping_s=0.2)):
        with connect(central, central.key("viewer")) as ws:
            assert ws.receive_json(timeout=WAIT_S) == {"type": "ping"}


def raw_websocket(base_url: str, credential: str) -> socket.socket:
    """A WebSocket opened by hand on a socket with a tiny receive buffer, so the test can stop reading."""
    parts = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT_S)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.sendall(
        (
            f"GET /ws/events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {credential}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return data


def close_code(sock: socket.socket) -> int:
    """Read (and skip) frames until the close frame; its status code."""
    while True:
        opcode, length = read_exact(sock, 2)
        length &= 0x7F
        if length >= 126:
            length = int.from_bytes(read_exact(sock, 2 if length == 126 else 8), "big")
        payload = read_exact(sock, length)
        if opcode & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big")


def test_live_slow_client_is_dropped_and_forgotten(live_settings: CentralSettings) -> None:
    settings = replace(live_settings, ws_queue_size=50)
    with serve(settings) as base:
        with psycopg.connect(settings.database_url) as conn:
            viewer = create_key_sync(conn, "slow", "viewer", ()).display
        sock = raw_websocket(base, viewer)
        publisher = redis.Redis.from_url(settings.redis_url or "")

        def gauges() -> tuple[float | None, float | None]:
            text = httpx.get(f"{base}/metrics").text
            return metric(text, "facegate_live_clients"), metric(
                text, "facegate_live_dropped_clients_total", reason="slow"
            )

        deadline = time.monotonic() + WAIT_S
        while (
            gauges() != (1, None)
            or metric(httpx.get(f"{base}/metrics").text, "facegate_live_subscribed") != 1
        ):
            assert time.monotonic() < deadline, "the client was not registered, or no Redis subscription"
            time.sleep(0.05)
        padded = [dict(event("s1"), camera="x" * 2000) for _ in range(200)]
        for _ in range(100):  # up to 40 MB: far more than socket buffers and the 50-event queue hold
            publisher.publish(settings.live_channel, encode_batch(padded))
            if gauges()[1]:
                break
        assert gauges() == (0, 1)
        assert close_code(sock) == 1013
        sock.close()


def test_live_hub_overflow_drops_the_client_and_empties_its_queue() -> None:
    hub = LiveHub(queue_size=3, metrics=LiveMetrics(CollectorRegistry()))
    slow = hub.add(Principal("key", "viewer1", Scope.VIEWER), (), None)
    hub.deliver(live_events(encode_batch([event("s1") for _ in range(4)])))
    assert slow.dropped.is_set()
    assert slow not in hub.clients
    assert slow.queue.empty()
