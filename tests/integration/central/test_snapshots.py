"""Gallery snapshots over the real app: replay semantics per version, storage and reuse, Gone, access, and
the edge's own decoding of what the route serves."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest

from central.storage import S3Settings, S3Store
from common.messages import Snapshot, decode_snapshot
from edge.gallery.cache import Gallery
from edge.gallery.snapshots import SnapshotFetcher
from tests.support.central_app import Central
from tests.support.gallery_rows import (
    MODEL,
    SIZE,
    add_edge,
    add_person,
    add_site,
    add_template,
    delete_template,
    enroll,
)

API = "/api/v1/galleries"


@pytest.fixture
def staff(central: Central) -> Central:
    """`central` with sites north and south and a gallery `staff` scoped to north."""
    with central.db() as conn:
        add_site(conn, "north")
        add_site(conn, "south")
    body = {"id": "staff", "name": "Staff", "sites": ["north"]}
    assert central.client.post(API, json=body, headers=central.admin).status_code == 201
    return central


def fetch(central: Central, version: int | None = None, headers: dict[str, str] | None = None) -> Any:
    params = {} if version is None else {"version": version}
    return central.client.get(f"{API}/staff/snapshot", params=params, headers=headers or central.admin)


def held(central: Central, version: int) -> dict[str, str]:
    """{template id: person id} of the served snapshot of `version`."""
    response = fetch(central, version)
    assert response.status_code == 200, response.text
    snapshot = decode_snapshot(response.content)
    assert (snapshot.gallery, snapshot.version, snapshot.model) == ("staff", version, MODEL)
    return {t.template_id: t.person_id for t in snapshot.templates}


def member(central: Central, person: UUID, present: bool) -> None:
    call = central.client.put if present else central.client.delete
    response = call(f"{API}/staff/people/{person}", headers=central.admin)
    assert response.status_code == 200, response.text


def store(central: Central) -> S3Store:
    assert isinstance(central.settings.storage, S3Settings)
    return S3Store(central.settings.storage)


def test_snapshots_hold_exactly_the_templates_of_each_version(staff: Central) -> None:
    dsn, rng = staff.settings.database_url, np.random.default_rng(3)
    with staff.db() as conn:
        ada, bob = add_person(conn), add_person(conn)
        a1, a2 = (str(add_template(conn, ada, rng)) for _ in range(2))
        b1 = str(add_template(conn, bob, rng))
    a, b = str(ada), str(bob)
    member(staff, ada, True)  # 1
    member(staff, bob, True)  # 2
    b2 = str(enroll(dsn, bob, rng))  # 3
    member(staff, bob, False)  # 4
    a3 = str(enroll(dsn, ada, rng))  # 5
    staff.client.patch(f"{API}/staff", json={"sites": ["north", "south"]}, headers=staff.admin)  # 6
    member(staff, bob, True)  # 7
    expected = {
        0: {},
        1: {a1: a, a2: a},
        2: {a1: a, a2: a, b1: b},
        3: {a1: a, a2: a, b1: b, b2: b},
        4: {a1: a, a2: a},
        5: {a1: a, a2: a, a3: a},
        6: {a1: a, a2: a, a3: a},
        7: {a1: a, a2: a, a3: a, b1: b, b2: b},
    }
    assert {v: held(staff, v) for v in expected} == expected


def test_snapshots_stored_before_a_deletion_are_still_served_and_the_rest_is_gone(staff: Central) -> None:
    dsn, rng = staff.settings.database_url, np.random.default_rng(4)
    with staff.db() as conn:
        ada = add_person(conn)
        a1, a2 = (add_template(conn, ada, rng) for _ in range(2))
    member(staff, ada, True)  # 1
    before = fetch(staff, 1)  # stored now
    a3 = enroll(dsn, ada, rng)  # 2: never stored
    delete_template(dsn, ada, a1)  # 3
    assert fetch(staff, 1).content == before.content
    gone = fetch(staff, 2)
    assert (gone.status_code, gone.json()["code"]) == (410, "gone")
    assert "current version" in gone.json()["message"]
    assert held(staff, 3) == {str(a2): str(ada), str(a3): str(ada)}


def test_snapshots_of_people_removed_then_erased_still_build(staff: Central) -> None:
    rng = np.random.default_rng(5)
    with staff.db() as conn:
        ada, bob = add_person(conn), add_person(conn)
        add_template(conn, ada, rng)
        b1 = str(add_template(conn, bob, rng))
    member(staff, ada, True)  # 1
    member(staff, ada, False)  # 2
    with staff.db() as conn:  # erased: ada's rows are deleted, the log keeps her template id
        conn.execute("DELETE FROM templates WHERE person_id = %s", (ada,))
    member(staff, bob, True)  # 3
    assert held(staff, 3) == {b1: str(bob)}
    assert held(staff, 2) == {}


def test_snapshots_sha256_header_matches_body_row_and_stored_object(staff: Central) -> None:
    rng = np.random.default_rng(6)
    with staff.db() as conn:
        add_template(conn, person := add_person(conn), rng)
    member(staff, person, True)
    response = fetch(staff)
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["x-facegate-sha256"] == digest
    assert response.headers["x-facegate-version"] == "1"
    assert response.headers["etag"] == f'"{digest}"'
    assert response.headers["content-type"].startswith("application/vnd.facegate.gallery-snapshot+msgpack")
    with staff.db() as conn:
        row = conn.execute("SELECT object_key, sha256, size_bytes, template_count FROM snapshots").fetchone()
    assert row == ("snapshots/staff/1.msgpack", digest, len(response.content), 1)
    assert hashlib.sha256(store(staff).get(row[0])).hexdigest() == digest


def test_snapshots_decode_with_the_edge_and_load_into_its_gallery(staff: Central, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with staff.db() as conn:
        person = add_person(conn)
        embeddings = {str(add_template(conn, person, rng)) for _ in range(3)}
        credential = add_edge(conn, "north", "door-1")
    member(staff, person, True)
    built = staff.client.post(f"{API}/staff/snapshots", headers=staff.admin).json()
    url = SnapshotFetcher("http://testserver", credential).url("staff", built["version"])
    response = staff.client.get(url, headers=staff.as_(credential))
    assert response.status_code == 200, response.text
    assert hashlib.sha256(response.content).hexdigest() == built["sha256"]
    snapshot: Snapshot = decode_snapshot(response.content)
    assert {t.template_id for t in snapshot.templates} == embeddings
    assert snapshot.embedding_size == SIZE
    gallery = Gallery.open(tmp_path / "staff.db", "staff", MODEL)
    try:
        gallery.replace_with_snapshot(snapshot)
        assert (gallery.version, gallery.template_count) == (1, 3)
    finally:
        gallery.close()


def test_snapshots_are_refused_to_an_edge_of_another_site(staff: Central) -> None:
    with staff.db() as conn:
        other = add_edge(conn, "south", "door-9")
    response = fetch(staff, headers=staff.as_(other))
    assert (response.status_code, response.json()["code"]) == (403, "gallery_not_allowed")


def test_snapshots_of_an_unknown_gallery_or_future_version_are_404(staff: Central) -> None:
    assert staff.client.get(f"{API}/nobody/snapshot", headers=staff.admin).status_code == 404
    assert fetch(staff, 5).status_code == 404


def test_snapshots_of_an_empty_gallery_carry_the_model_embedding_size(staff: Central) -> None:
    snapshot = decode_snapshot(fetch(staff).content)
    assert (snapshot.version, snapshot.templates, snapshot.embedding_size) == (0, [], SIZE)


def test_snapshots_build_now_needs_operator_and_is_reused(staff: Central) -> None:
    viewer, operator = staff.key("viewer"), staff.key("operator")
    assert staff.client.post(f"{API}/staff/snapshots", headers=staff.as_(viewer)).status_code == 403
    first = staff.client.post(f"{API}/staff/snapshots", headers=staff.as_(operator))
    assert first.status_code == 200, first.text
    again = staff.client.post(f"{API}/staff/snapshots", headers=staff.as_(operator)).json()
    assert again == first.json()
    assert set(again) >= {"version", "sha256", "object_key", "template_count", "size_bytes"}
    assert fetch(staff, headers=staff.as_(operator)).status_code == 200
    assert fetch(staff, headers=staff.as_(viewer)).status_code == 403  # templates: not for viewers


def test_snapshots_with_a_damaged_stored_object_are_rebuilt(staff: Central) -> None:
    rng = np.random.default_rng(8)
    with staff.db() as conn:
        add_template(conn, person := add_person(conn), rng)
    member(staff, person, True)
    original = fetch(staff).content
    store(staff).put("snapshots/staff/1.msgpack", b"tampered")
    assert fetch(staff).content == original
    assert store(staff).get("snapshots/staff/1.msgpack") == original


def test_snapshots_unchanged_etag_answers_304(staff: Central) -> None:
    etag = fetch(staff).headers["etag"]
    response = staff.client.get(f"{API}/staff/snapshot", headers={**staff.admin, "If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""


def test_snapshots_objects_are_deleted_with_their_gallery(staff: Central) -> None:
    fetch(staff)
    assert store(staff).exists("snapshots/staff/0.msgpack")
    assert staff.client.delete(f"{API}/staff", headers=staff.admin).status_code == 204
    assert not store(staff).exists("snapshots/staff/0.msgpack")
