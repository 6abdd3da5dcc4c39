"""The console over the real app: sign-in and its cookie, sessions that end with their key, CSRF and
Origin on every change, roles (a viewer's forced action refused), site restriction, escaping of user
input, the CSP header. The browser tests (tests/system/console/) drive the same pages in Chromium."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from litestar.exceptions import WebSocketDisconnect

from central.events.repository import EventRow, insert_events
from central.events.schemas import EventRead
from central.live.service import LiveService
from central.settings import CentralSettings
from devtools.services import PostgresService, RedisService, S3Service
from tests.support.central_app import Central, shared_central, start_central
from tests.support.console import ORIGIN, csrf_of, sign_in

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def central(
    postgres_server: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[Central]:
    with shared_central(postgres_server, s3_server, redis_server, model_dir) as started:
        started.client.base_url = ORIGIN
        with started.db() as conn:
            conn.execute("INSERT INTO sites (id, name) VALUES ('north', 'North'), ('south', 'South')")
        yield started


def test_console_without_session_redirects_to_signin(central: Central) -> None:
    central.client.cookies.clear()
    answer = central.client.get("/console/fleet", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/signin"


def test_console_signin_sets_strict_httponly_cookie_and_signout_ends_it(central: Central) -> None:
    central.client.cookies.clear()
    answer = central.client.post(
        "/console/signin", data={"key": central.admin_key}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; behind TLS it is set
    assert central.admin_key not in cookie
    page = central.client.get("/console/fleet")
    assert page.status_code == 200 and "Fleet" in page.text
    out = central.client.post(
        "/console/signout", data={"csrf": csrf_of(page.text)}, headers={"Origin": ORIGIN}
    )
    assert out.url.path == "/console/signin"
    assert central.client.get("/console/fleet", follow_redirects=False).status_code == 303


def test_console_signin_behind_tls_sets_secure_cookie(central: Central) -> None:
    central.client.cookies.clear()
    answer = central.client.post(
        "/console/signin",
        data={"key": central.admin_key},
        headers={"Origin": ORIGIN, "X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert "Secure" in answer.headers["set-cookie"]


def test_console_signin_with_bad_key_says_so(central: Central) -> None:
    central.client.cookies.clear()
    answer = central.client.post("/console/signin", data={"key": "fg_nope"}, headers={"Origin": ORIGIN})
    assert answer.status_code == 401
    assert "That key was not accepted" in answer.text
    assert "set-cookie" not in answer.headers


def test_console_signin_from_another_origin_is_refused(central: Central) -> None:
    central.client.cookies.clear()
    answer = central.client.post(
        "/console/signin", data={"key": central.admin_key}, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_console_post_without_csrf_is_refused(central: Central) -> None:
    sign_in(central.client, central.admin_key)
    answer = central.client.post(
        "/console/people", data={"external_id": "no-csrf", "display_name": "X"}, headers={"Origin": ORIGIN}
    )
    assert answer.status_code == 403
    assert "CSRF token is missing or stale" in answer.text
    wrong = central.client.post(
        "/console/people", data={"external_id": "no-csrf", "csrf": "x" * 43}, headers={"Origin": ORIGIN}
    )
    assert wrong.status_code == 403


def test_console_post_from_another_origin_is_refused(central: Central) -> None:
    csrf = sign_in(central.client, central.admin_key)
    answer = central.client.post(
        "/console/people",
        data={"external_id": "x-origin", "csrf": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert "did not come from a console page" in answer.text


def test_console_revoking_a_key_ends_its_sessions(central: Central) -> None:
    key = central.key("viewer", name="to revoke")
    sign_in(central.client, key)
    assert central.client.get("/console/fleet").status_code == 200
    prefix = key.split("_")[1]
    assert central.client.delete(f"/api/v1/auth/keys/{prefix}", headers=central.admin).status_code == 200
    assert central.client.get("/console/fleet", follow_redirects=False).status_code == 303


def test_console_viewer_sees_no_action_and_forced_action_is_refused(central: Central) -> None:
    csrf = sign_in(central.client, central.key("viewer"))
    people = central.client.get("/console/people").text
    assert "Add a person" not in people and "Bulk enrollment" not in people
    forced = central.client.post(
        "/console/people", data={"external_id": "forced", "csrf": csrf}, headers={"Origin": ORIGIN}
    )
    assert forced.status_code == 403
    assert "insufficient_scope" in forced.text
    assert "/console/keys" not in people  # admins only


def test_console_site_restricted_key_sees_only_its_site(central: Central) -> None:
    gallery = {"id": "south-only", "name": "S", "sites": ["south"]}
    assert central.client.post("/api/v1/galleries", json=gallery, headers=central.admin).status_code == 201
    person = {"external_id": "south-1", "display_name": "Southerner", "galleries": ["south-only"]}
    southerner = central.client.post("/api/v1/people", json=person, headers=central.admin).json()
    sign_in(central.client, central.key("admin", sites=["north"]))
    assert "Southerner" not in central.client.get("/console/people").text
    assert central.client.get(f"/console/people/{southerner['id']}").status_code == 404
    sites = central.client.get("/console/sites").text
    assert "north" in sites and "south" not in sites
    assert 'href="/console/jobs"' not in sites and 'href="/console/keys"' not in sites  # span every site
    events = central.client.get("/console/events", params={"site": "south"})
    assert events.status_code == 403


def test_console_names_are_escaped(central: Central) -> None:
    csrf = sign_in(central.client, central.admin_key)
    created = central.client.post(
        "/console/people",
        data={"external_id": "xss-1", "display_name": XSS, "csrf": csrf},
        headers={"Origin": ORIGIN},
    )
    assert created.status_code == 200
    assert XSS not in created.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in created.text
    listing = central.client.get("/console/people", params={"q": "onerror"}).text
    assert XSS not in listing and "&lt;img" in listing


def test_console_pages_send_the_strict_csp(central: Central) -> None:
    sign_in(central.client, central.admin_key)
    person = central.client.post(
        "/api/v1/people", json={"external_id": "csp-1", "display_name": "Csp"}, headers=central.admin
    ).json()["id"]
    pages = ("signin", "fleet", "events", "people", "jobs", "galleries", "sites", "keys", "audit")
    for path in [*(f"/console/{name}" for name in pages), f"/console/people/{person}"]:
        answer = central.client.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' http")
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert "<script>" not in answer.text and " style=" not in answer.text
        assert answer.headers["cache-control"] == "no-store"  # pages hold personal data
    asset = central.client.get("/console/static/console.js")
    assert asset.headers["cache-control"] == "no-cache" and "etag" in asset.headers
    api = central.client.get("/api/v1/people", headers=central.admin)
    assert "script-src" not in api.headers.get("content-security-policy", "")


def test_console_adds_a_person_to_the_galleries_ticked(central: Central) -> None:
    made = central.client.post(
        "/api/v1/galleries", json={"id": "lobby", "name": "Lobby"}, headers=central.admin
    )
    assert made.status_code == 201, made.text
    csrf = sign_in(central.client, central.admin_key)
    assert 'name="galleries" value="lobby"' in central.client.get("/console/people").text
    created = central.client.post(
        "/console/people",
        data={"external_id": "gal-1", "display_name": "Gal", "galleries": ["lobby"], "csrf": csrf},
        headers={"Origin": ORIGIN},
    )
    person = created.url.path.rsplit("/", 1)[1]
    assert central.client.get(f"/api/v1/people/{person}", headers=central.admin).json()["galleries"] == [
        "lobby"
    ]


def test_console_registers_an_edge_and_shows_its_credentials_once(central: Central) -> None:
    csrf = sign_in(central.client, central.admin_key)
    shown = central.client.post(
        "/console/sites/north/edges", data={"id": "door-7", "csrf": csrf}, headers={"Origin": ORIGIN}
    )
    assert shown.status_code == 200, shown.text
    assert "Shown this once" in shown.text and "site: north\nedge: door-7\n" in shown.text
    assert f"url: {ORIGIN}\n" in shown.text  # the device file points at this central
    assert re.search(r'<code id="api-key">fg_[a-z0-9]{8}_', shown.text)
    listing = central.client.get("/console/sites").text
    assert "door-7" in listing and "fg_" not in listing  # never shown again
    rotated = central.client.post(
        "/console/sites/north/edges/door-7/rotate", data={"csrf": csrf}, headers={"Origin": ORIGIN}
    )
    assert rotated.status_code == 200 and "Shown this once" in rotated.text
    gone = central.client.post(
        "/console/sites/north/edges/door-7/decommission", data={"csrf": csrf}, headers={"Origin": ORIGIN}
    )
    assert gone.status_code == 200 and "door-7" not in gone.text


def test_console_creates_a_key_shown_once_and_revokes_it_ending_its_session(central: Central) -> None:
    csrf = sign_in(central.client, central.admin_key)
    created = central.client.post(
        "/console/keys",
        data={"name": "kiosk", "scope": "viewer", "sites": "north", "csrf": csrf},
        headers={"Origin": ORIGIN},
    )
    found = re.search(r'<code id="new-key">(fg_[^<]+)</code>', created.text)
    assert found is not None, created.text
    key = found.group(1)
    sign_in(central.client, key)
    assert central.client.get("/console/fleet").status_code == 200
    csrf = sign_in(central.client, central.admin_key)
    prefix = key.split("_")[1]
    central.client.post(f"/console/keys/{prefix}/revoke", data={"csrf": csrf}, headers={"Origin": ORIGIN})
    audit = central.client.get("/console/audit", params={"action": "api_key."}).text
    assert "api_key.revoke" in audit and "api_key.create" in audit and "person.create" not in audit
    central.client.cookies.clear()
    refused = central.client.post("/console/signin", data={"key": key}, headers={"Origin": ORIGIN})
    assert refused.status_code == 401


def test_console_resync_without_a_broker_says_so(central: Central) -> None:
    csrf = sign_in(central.client, central.admin_key)
    central.client.post("/api/v1/galleries", json={"id": "resync-g", "name": "R"}, headers=central.admin)
    answer = central.client.post(
        "/console/galleries/resync-g/resync/north/door", data={"csrf": csrf}, headers={"Origin": ORIGIN}
    )
    assert answer.status_code == 503
    assert "central runs without a broker" in answer.text


def live_event(site: str, camera: str) -> dict[str, Any]:
    """An event as ingest publishes it (EventRead's fields)."""
    now = datetime.now(UTC)
    built: dict[str, Any] = msgspec.to_builtins(
        EventRead(
            id=uuid.uuid4(),
            ts=now,
            received_at=now,
            site=site,
            edge="e1",
            camera=camera,
            seq=1,
            track_id=1,
            kind="unknown",
            person_id=None,
            score=0.2,
            threshold=0.36,
            quality=0.8,
            bbox=[1.0, 2.0, 3.0, 4.0],
            model_id="sface-2021dec",
            gallery_id=None,
            gallery_version=0,
            first_seen=None,
            has_crop=False,
            erased_at=None,
        )
    )
    return built


def test_console_live_needs_a_session_and_this_origin(central: Central) -> None:
    central.client.cookies.clear()
    with pytest.raises(WebSocketDisconnect), central.client.websocket_connect("/console/live") as ws:
        ws.receive_text(timeout=5)
    sign_in(central.client, central.admin_key)
    elsewhere = {"Origin": "https://evil.example"}
    with (
        central.client.websocket_connect("/console/live", headers=elsewhere) as ws,
        pytest.raises(WebSocketDisconnect) as refused,
    ):
        ws.receive_text(timeout=5)
    assert refused.value.code == 4403


def test_console_live_sends_escaped_rows_of_the_sites_the_key_sees(central: Central) -> None:
    sign_in(central.client, central.key("viewer", sites=["north"]))
    live: LiveService = central.client.app.state.live
    deadline = time.monotonic() + 10
    with central.client.websocket_connect("/console/live", headers={"Origin": ORIGIN}) as ws:
        while not live.hub.clients:
            assert time.monotonic() < deadline, "the console's socket did not join the live hub"
            time.sleep(0.05)
        with central.client.portal() as portal:
            portal.call(live.publish, [live_event("south", "not-mine"), live_event("north", XSS)])
        row = ws.receive_text(timeout=10)
    assert row.startswith('<tbody id="event-rows" hx-swap-oob="afterbegin">')
    assert "&lt;img src=x onerror=alert(1)&gt;" in row and XSS not in row
    assert "not-mine" not in row


def test_console_explains_what_was_wrong_with_a_form(central: Central) -> None:
    csrf = sign_in(central.client, central.admin_key)
    empty = central.client.post(
        "/console/people", data={"external_id": "", "csrf": csrf}, headers={"Origin": ORIGIN}
    )
    assert empty.status_code == 422 and "the person&#39;s fields" in empty.text
    bad_id = central.client.get("/console/events", params={"person": "bob"})
    assert bad_id.status_code == 422 and "person: expected a person id" in bad_id.text
    person = central.client.post(
        "/api/v1/people", json={"external_id": "keep-1", "display_name": "Keep Me"}, headers=central.admin
    ).json()["id"]
    wrong = central.client.post(
        f"/console/people/{person}/erase", data={"confirm": "Keep", "csrf": csrf}, headers={"Origin": ORIGIN}
    )
    assert wrong.status_code == 422 and "type the person&#39;s name exactly" in wrong.text
    assert central.client.get(f"/api/v1/people/{person}", headers=central.admin).status_code == 200


def test_console_events_filter_and_page_by_the_apis_cursors(central: Central) -> None:
    now = datetime.now(UTC)
    rows = [
        EventRow(id=uuid.uuid4(), ts=now - timedelta(minutes=i), site_id="north" if i % 2 else "south",
                 edge_id="e1", camera=f"pager-{i:03d}", track_id=i, kind="unknown", person_id=None, score=0.2,
                 threshold=0.36, quality=0.8, bbox=(1.0, 2.0, 3.0, 4.0), model_id="sface-2021dec")
        for i in range(120)
    ]  # fmt: skip

    async def insert() -> None:
        async with await psycopg.AsyncConnection.connect(central.settings.database_url) as conn:
            await insert_events(conn, rows)

    asyncio.run(insert())
    sign_in(central.client, central.admin_key)
    first = central.client.get("/console/events", params={"camera": "pager-000"}).text
    assert "pager-000" in first and "pager-001" not in first and 'id="live-state"' in first
    north = central.client.get("/console/events", params={"site": "north", "unknown": "1"}).text
    older = re.search(r'href="(/console/events\?[^"]*cursor=[^"]+)"', north)
    assert older is not None, "a full page links to the older events"
    assert "pager-001" in north and "pager-000" not in north  # north holds the odd ones, newest first
    following = central.client.get(older.group(1).replace("&amp;", "&")).text
    assert "pager-119" in following and "pager-001" not in following
    assert 'id="live-state"' not in following  # history pages are not live


def test_console_photo_upload_has_the_photo_limit_not_the_1_mib_one(central: Central) -> None:
    csrf = sign_in(central.client, central.admin_key)
    person = central.client.post(
        "/api/v1/people", json={"external_id": "big-1", "display_name": "Big"}, headers=central.admin
    ).json()["id"]
    big = b"\xff\xd8\xff\xe0" + bytes(1536 * 1024)  # 1.5 MiB, not a decodable photo
    answer = central.client.post(
        f"/console/people/{person}/photos",
        data={"csrf": csrf},
        files={"photos": ("big.jpg", big, "image/jpeg")},
        headers={"Origin": ORIGIN},
    )
    assert answer.status_code == 200, answer.text[:300]
    assert 'data-reason="bad_image"' in answer.text


def test_console_failed_sign_ins_meet_the_apis_failed_authentication_limit(
    central_settings: CentralSettings,
) -> None:
    settings = replace(central_settings, auth_fail_key_burst=2, auth_fail_ip_burst=1000)
    with contextmanager(start_central)(settings) as limited:
        limited.client.base_url = ORIGIN
        prefix = limited.admin_key.split("_")[1]
        wrong = f"fg_{prefix}_" + "A" * 43
        answers = [
            limited.client.post("/console/signin", data={"key": wrong}, headers={"Origin": ORIGIN})
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert "Too many sign-in attempts" in answers[-1].text
        assert "set-cookie" not in answers[-1].headers
