"""Events: the idempotent repository writes, listing filters, keyset pages, site restriction, crops."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from central.db import migrate
from central.events.repository import EventQuery, EventRow, insert_events, listing_sql
from central.runtime import open_object_store
from central.storage import crop_key
from devtools.services import PostgresService
from tests.support.central_app import Central

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
BOB = uuid.UUID("00000000-0000-4000-8000-000000000b0b")


def event(site: str = "a", edge: str = "e1", camera: str = "door", **fields: Any) -> EventRow:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "ts": T0,
        "site_id": site,
        "edge_id": edge,
        "camera": camera,
        "track_id": 1,
        "kind": "recognized" if fields.get("person_id") else "unknown",
        "person_id": None,
        "score": 0.7,
        "threshold": 0.36,
        "quality": 0.9,
        "bbox": (10.0, 20.0, 30.0, 40.0),
        "model_id": "sface-2021dec",
    }
    values.update(fields)
    return EventRow(**values)


def store(central: Central, rows: Sequence[EventRow]) -> list[uuid.UUID]:
    async def run() -> list[uuid.UUID]:
        async with await psycopg.AsyncConnection.connect(central.settings.database_url) as conn:
            inserted = await insert_events(conn, rows)
            await conn.commit()
            return inserted

    return asyncio.run(run())


def listed(central: Central, headers: dict[str, str] | None = None, /, **params: Any) -> list[str]:
    response = central.client.get("/api/v1/events", params=params, headers=headers or central.admin)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_events_insert_is_idempotent_and_returns_new_ids(central: Central) -> None:
    first, second = event(), event()
    assert store(central, [first, second]) == [first.id, second.id]
    third = event()
    assert store(central, [first, third, third]) == [third.id]
    moved = EventRow(**{**{f: getattr(first, f) for f in first.__slots__}, "ts": T0 + timedelta(days=40)})
    assert store(central, [moved]) == []  # the same id at another time is still a duplicate
    assert sorted(listed(central)) == sorted(str(e.id) for e in (first, second, third))


def test_events_insert_keeps_every_column(central: Central) -> None:
    row = event(
        person_id=ALICE, seq=7, gallery_id="staff", gallery_version=3, first_seen=T0, crop_key="crops/x.jpg"
    )
    store(central, [row])
    got = central.client.get(f"/api/v1/events/{row.id}", headers=central.admin).json()
    assert got["person_id"] == str(ALICE)
    assert (got["seq"], got["gallery_id"], got["gallery_version"]) == (7, "staff", 3)
    assert got["bbox"] == [10.0, 20.0, 30.0, 40.0]
    assert got["has_crop"] is True
    assert datetime.fromisoformat(got["ts"]) == T0


@pytest.fixture
def fleet(central: Central) -> dict[str, EventRow]:
    """One event per filter to tell apart, each an hour older than the previous."""
    rows = {
        "a_e1_door_alice": event(person_id=ALICE),
        "a_e1_hall_unknown": event(camera="hall"),
        "a_e2_door_bob": event(edge="e2", person_id=BOB),
        "b_e1_door_alice": event(site="b", person_id=ALICE),
        "c_e9_gate_unknown": event(site="c", edge="e9", camera="gate"),
    }
    for hours, (name, row) in enumerate(rows.items()):
        rows[name] = EventRow(
            **{**{f: getattr(row, f) for f in row.__slots__}, "ts": T0 - timedelta(hours=hours)}
        )
    store(central, list(rows.values()))
    return rows


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {},
            ["a_e1_door_alice", "a_e1_hall_unknown", "a_e2_door_bob", "b_e1_door_alice", "c_e9_gate_unknown"],
        ),
        ({"site": "a"}, ["a_e1_door_alice", "a_e1_hall_unknown", "a_e2_door_bob"]),
        ({"site": "a", "edge": "e2"}, ["a_e2_door_bob"]),
        ({"camera": "door"}, ["a_e1_door_alice", "a_e2_door_bob", "b_e1_door_alice"]),
        ({"person_id": str(ALICE)}, ["a_e1_door_alice", "b_e1_door_alice"]),
        ({"unknown": "true"}, ["a_e1_hall_unknown", "c_e9_gate_unknown"]),
        ({"unknown": "false", "site": "a"}, ["a_e1_door_alice", "a_e2_door_bob"]),
        ({"since": "2026-01-15T10:00:00Z"}, ["a_e1_door_alice", "a_e1_hall_unknown", "a_e2_door_bob"]),
        ({"until": "2026-01-15T10:00:00Z"}, ["b_e1_door_alice", "c_e9_gate_unknown"]),
        ({"since": "2026-01-15T12:00:00+01:00", "until": "2026-01-15T11:30:00Z"}, ["a_e1_hall_unknown"]),
    ],
)
def test_events_filters_narrow_the_listing(
    central: Central, fleet: dict[str, EventRow], params: dict[str, str], expected: list[str]
) -> None:
    assert listed(central, **params) == [str(fleet[name].id) for name in expected]


def test_events_restricted_key_sees_only_its_sites(central: Central, fleet: dict[str, EventRow]) -> None:
    key = central.as_(central.key("viewer", ["b", "c"]))
    assert listed(central, key) == [str(fleet["b_e1_door_alice"].id), str(fleet["c_e9_gate_unknown"].id)]
    assert listed(central, key, camera="door") == [str(fleet["b_e1_door_alice"].id)]
    assert listed(central, key, edge="e1") == [str(fleet["b_e1_door_alice"].id)]
    refused = central.client.get("/api/v1/events", params={"site": "a"}, headers=key)
    assert refused.status_code == 403
    alice_a = central.client.get(f"/api/v1/events/{fleet['a_e1_door_alice'].id}", headers=key)
    assert alice_a.status_code == 403


def test_events_keyset_pages_return_every_event_once(central: Central) -> None:
    rows = [event(camera=f"cam{i % 3}") for i in range(57)]  # all at the same ts
    rows += [event(ts=T0 - timedelta(seconds=1)) for _ in range(5)]
    store(central, rows)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7}
    while True:
        page = central.client.get("/api/v1/events", params=params, headers=central.admin).json()
        seen.extend(item["id"] for item in page["items"])
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert len(seen) == len(set(seen)) == 62
    newest = sorted((str(r.id) for r in rows[:57]), reverse=True)
    oldest = sorted((str(r.id) for r in rows[57:]), reverse=True)
    assert seen == newest + oldest


def test_events_keyset_pages_merge_several_sites_in_order(central: Central) -> None:
    rows = [event(site=site, ts=T0 - timedelta(minutes=i)) for i in range(12) for site in ("a", "b", "c")]
    store(central, rows)
    key = central.as_(central.key("viewer", ["a", "b"]))
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = central.client.get("/api/v1/events", params=params, headers=key).json()
        seen.extend(item["id"] for item in page["items"])
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    mine = sorted((r for r in rows if r.site_id != "c"), key=lambda r: (r.ts, str(r.id)), reverse=True)
    assert seen == [str(r.id) for r in mine]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "not-a-cursor"}, "bad_cursor"),
        ({"cursor": "WyJ4Il0"}, "bad_cursor"),  # ["x"]: one value where two belong
        ({"edge": "e1"}, "invalid_input"),
        ({"since": "2026-01-15T10:00:00"}, "invalid_input"),
        ({"since": "2026-01-15T10:00:00Z", "until": "2026-01-15T09:00:00Z"}, "invalid_input"),
    ],
)
def test_events_bad_query_is_422_with_a_message(central: Central, params: dict[str, str], code: str) -> None:
    response = central.client.get("/api/v1/events", params=params, headers=central.admin)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["message"]


def test_events_limit_above_500_is_refused(central: Central) -> None:
    response = central.client.get("/api/v1/events", params={"limit": 501}, headers=central.admin)
    assert response.status_code == 400


def test_events_detail_gives_a_presigned_crop_url(central: Central) -> None:
    row = event(person_id=ALICE)
    key = crop_key(row.id, row.ts)
    open_object_store(central.settings).put(key, b"\xff\xd8crop-bytes\xff\xd9", "image/jpeg")
    store(central, [EventRow(**{**{f: getattr(row, f) for f in row.__slots__}, "crop_key": key})])
    detail = central.client.get(f"/api/v1/events/{row.id}", headers=central.admin).json()
    assert detail["crop_url_expires_in"] == central.settings.presign_ttl_s
    fetched = httpx.get(detail["crop_url"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == b"\xff\xd8crop-bytes\xff\xd9"


def test_events_erased_event_shows_erased_at_and_no_crop(central: Central) -> None:
    row = event(person_id=ALICE, crop_key="crops/2026/01/15/x.jpg")
    store(central, [row])
    with central.db() as conn:
        conn.execute("UPDATE events SET erased_at = now(), crop_key = NULL WHERE id = %s", (row.id,))
    detail = central.client.get(f"/api/v1/events/{row.id}", headers=central.admin).json()
    assert detail["erased_at"] is not None
    assert detail["crop_url"] is None
    assert detail["has_crop"] is False


def test_events_unknown_id_is_404(central: Central) -> None:
    assert central.client.get(f"/api/v1/events/{uuid.uuid4()}", headers=central.admin).status_code == 404


def test_events_last_seen_is_the_newest_visible_event(central: Central, fleet: dict[str, EventRow]) -> None:
    newest = central.client.get(f"/api/v1/people/{ALICE}/last-seen", headers=central.admin)
    assert newest.status_code == 200, newest.text
    expected = fleet["a_e1_door_alice"]
    assert newest.json() == {
        "ts": newest.json()["ts"],
        "site": "a",
        "edge": "e1",
        "camera": "door",
        "event_id": str(expected.id),
    }
    assert datetime.fromisoformat(newest.json()["ts"]) == expected.ts
    key = central.as_(central.key("viewer", ["b"]))
    in_b = central.client.get(f"/api/v1/people/{ALICE}/last-seen", headers=key).json()
    assert in_b["event_id"] == str(fleet["b_e1_door_alice"].id)
    never = central.client.get(f"/api/v1/people/{BOB}/last-seen", headers=key)
    assert never.status_code == 404
    assert never.json()["code"] == "never_seen"


def test_events_last_seen_skips_erased_events(central: Central, fleet: dict[str, EventRow]) -> None:
    with central.db() as conn:
        conn.execute("UPDATE events SET erased_at = now() WHERE person_id = %s", (BOB,))
    assert central.client.get(f"/api/v1/people/{BOB}/last-seen", headers=central.admin).status_code == 404


SPREAD = """
INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, person_id, score, threshold, quality,
                    bbox, model_id)
SELECT gen_random_uuid(), %(t0)s - i * interval '1 minute',
       CASE WHEN i %% 100 = 0 THEN 'rare' ELSE 'busy' END,
       CASE WHEN i %% 100 = 1 THEN 'rare' ELSE 'e1' END,
       CASE WHEN i %% 100 = 2 THEN 'rare' ELSE 'cam' END,
       i, 'recognized',
       CASE WHEN i %% 100 = 3 THEN NULL WHEN i %% 100 = 4 THEN %(alice)s ELSE gen_random_uuid() END,
       0.5, 0.36, 0.9, '{0,0,1,1}', 'sface-2021dec'
  FROM generate_series(1, 5000) AS i
"""
"""5000 events, each filter value below matching 1 in 100 of them."""
PLANNED = {
    "newest": EventQuery(),
    "one site": EventQuery(sites=("rare",)),
    "one edge": EventQuery(sites=("busy",), edge="rare"),
    "camera": EventQuery(camera="rare"),
    "person": EventQuery(person_id=ALICE),
    "unknown only": EventQuery(unknown=True),
    "time range": EventQuery(since=T0 - timedelta(hours=2), until=T0 - timedelta(hours=1)),
    "deep page": EventQuery(after=(T0 - timedelta(hours=80), ALICE)),
}


@pytest.mark.parametrize("name", list(PLANNED))
def test_events_single_filter_listing_uses_its_index(postgres_db: PostgresService, name: str) -> None:
    migrate(postgres_db.dsn)
    sql, params = listing_sql(PLANNED[name])
    with psycopg.connect(postgres_db.dsn) as conn:
        conn.execute(SPREAD, {"t0": T0, "alice": ALICE})
        conn.execute("ANALYZE events")
        conn.execute("SET enable_seqscan = off")  # small tables: make the planner show its index
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, params))
    assert "Index Scan" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "Filter:" not in plan, plan  # every condition is an index condition (or a partial index's)
