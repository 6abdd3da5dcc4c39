"""Galleries over the real app: CRUD, scope and site checks, membership, and the gap-free version log."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import numpy as np
import pytest

from central.galleries.changes import change_body
from tests.support.central_app import Central
from tests.support.gallery_rows import (
    MODEL,
    add_edge,
    add_person,
    add_site,
    add_template,
    append_concurrently,
    delete_template,
    enroll,
    sites_change,
    versions,
)

API = "/api/v1/galleries"


@pytest.fixture
def sited(central: Central) -> Central:
    with central.db() as conn:
        for site in ("north", "south", "east"):
            add_site(conn, site)
    return central


def create(central: Central, gallery: str, sites: list[str], **extra: Any) -> dict[str, Any]:
    body = {"id": gallery, "name": f"gallery {gallery}", "sites": sites, **extra}
    response = central.client.post(API, json=body, headers=central.admin)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def add(central: Central, gallery: str, person: UUID, headers: dict[str, str] | None = None) -> Any:
    return central.client.put(f"{API}/{gallery}/people/{person}", headers=headers or central.admin)


def changes(central: Central, gallery: str, after: int = 0) -> list[dict[str, Any]]:
    response = central.client.get(f"{API}/{gallery}/changes", params={"after": after}, headers=central.admin)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_galleries_create_starts_at_version_zero_with_the_enrollment_model(sited: Central) -> None:
    created = create(sited, "staff", ["south", "north"])
    assert created["current_version"] == 0
    assert created["model_id"] == MODEL
    assert created["sites"] == ["north", "south"]
    read = sited.client.get(f"{API}/staff", headers=sited.admin).json()
    assert (read["member_count"], read["template_count"]) == (0, 0)


def test_galleries_create_with_an_unknown_site_is_refused_422(sited: Central) -> None:
    response = sited.client.post(
        API, json={"id": "g", "name": "g", "sites": ["nowhere"]}, headers=sited.admin
    )
    assert response.status_code == 422
    assert "nowhere" in response.json()["message"]


def test_galleries_create_twice_is_a_conflict(sited: Central) -> None:
    create(sited, "staff", ["north"])
    response = sited.client.post(API, json={"id": "staff", "name": "again"}, headers=sited.admin)
    assert response.status_code == 409


def test_galleries_get_unknown_is_404(sited: Central) -> None:
    response = sited.client.get(f"{API}/missing", headers=sited.admin)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_galleries_list_shows_a_restricted_key_only_galleries_of_its_sites(sited: Central) -> None:
    create(sited, "a-north", ["north"])
    create(sited, "b-both", ["north", "south"])
    create(sited, "c-south", ["south"])
    create(sited, "d-none", [])
    south = sited.key("viewer", ["south"])
    seen = sited.client.get(API, headers=sited.as_(south)).json()["items"]
    assert [g["id"] for g in seen] == ["b-both", "c-south"]
    everything = sited.client.get(API, headers=sited.admin).json()["items"]
    assert [g["id"] for g in everything] == ["a-north", "b-both", "c-south", "d-none"]
    assert sited.client.get(f"{API}/a-north", headers=sited.as_(south)).status_code == 403


def test_galleries_list_pages_by_id(sited: Central) -> None:
    for name in ("g1", "g2", "g3"):
        create(sited, name, ["north"])
    first = sited.client.get(API, params={"limit": 2}, headers=sited.admin).json()
    assert [g["id"] for g in first["items"]] == ["g1", "g2"]
    second = sited.client.get(API, params={"limit": 2, "after": first["next"]}, headers=sited.admin).json()
    assert [g["id"] for g in second["items"]] == ["g3"]
    assert second["next"] is None
    assert sited.client.get(API, params={"limit": 0}, headers=sited.admin).status_code == 400


def test_galleries_patch_sites_appends_a_scope_version_and_rename_does_not(sited: Central) -> None:
    create(sited, "staff", ["north"])
    renamed = sited.client.patch(f"{API}/staff", json={"name": "Staff"}, headers=sited.admin)
    assert renamed.json()["current_version"] == 0
    moved = sited.client.patch(f"{API}/staff", json={"sites": ["south", "east"]}, headers=sited.admin)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["current_version"], moved.json()["sites"]) == (1, ["east", "south"])
    same = sited.client.patch(f"{API}/staff", json={"sites": ["east", "south"]}, headers=sited.admin)
    assert same.json()["current_version"] == 1
    assert changes(sited, "staff")[0]["sites"] == ["east", "south"]


def test_galleries_restricted_operator_cannot_change_a_gallery_beyond_its_sites(sited: Central) -> None:
    create(sited, "both", ["north", "south"])
    north_operator = sited.key("operator", ["north"])
    response = sited.client.patch(f"{API}/both", json={"name": "x"}, headers=sited.as_(north_operator))
    assert response.status_code == 403
    escaping = sited.client.post(
        API, json={"id": "mine", "name": "m", "sites": ["south"]}, headers=sited.as_(north_operator)
    )
    assert escaping.status_code == 403
    assert (
        sited.client.post(
            API, json={"id": "mine", "name": "m", "sites": ["north"]}, headers=sited.as_(north_operator)
        ).status_code
        == 201
    )


def test_galleries_viewer_cannot_add_members(sited: Central) -> None:
    create(sited, "staff", ["north"])
    with sited.db() as conn:
        person = add_person(conn)
    assert add(sited, "staff", person, sited.as_(sited.key("viewer"))).status_code == 403


def test_galleries_add_member_upserts_their_templates_of_the_gallery_model_once(sited: Central) -> None:
    create(sited, "staff", ["north"])
    rng = np.random.default_rng(1)
    with sited.db() as conn:
        person = add_person(conn, "Ada")
        mine = sorted(str(add_template(conn, person, rng)) for _ in range(2))
        add_template(conn, person, rng, model="arcface-000000000000", size=512)
    first = add(sited, "staff", person)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    again = add(sited, "staff", person)
    assert again.json() == {"gallery": "staff", "person_id": str(person), "member": True, "version": None}
    with sited.db() as conn:
        row = conn.execute("SELECT change FROM gallery_changes WHERE gallery_id = 'staff'").fetchone()
    assert row is not None
    assert sorted(row[0]["upserts"]) == mine
    assert row[0]["owners"] == dict.fromkeys(mine, str(person))
    read = sited.client.get(f"{API}/staff", headers=sited.admin).json()
    assert (read["current_version"], read["member_count"], read["template_count"]) == (1, 1, 2)


def test_galleries_add_unknown_person_is_404(sited: Central) -> None:
    create(sited, "staff", ["north"])
    response = add(sited, "staff", UUID(int=5))
    assert response.status_code == 404


def test_galleries_remove_member_appends_deleted_people_and_a_stranger_is_404(sited: Central) -> None:
    create(sited, "staff", ["north"])
    with sited.db() as conn:
        person, stranger = add_person(conn), add_person(conn)
    add(sited, "staff", person)
    removed = sited.client.delete(f"{API}/staff/people/{person}", headers=sited.admin)
    assert removed.status_code == 200, removed.text
    assert removed.json()["version"] == 2
    assert changes(sited, "staff")[-1]["deleted_people"] == 1
    assert sited.client.delete(f"{API}/staff/people/{stranger}", headers=sited.admin).status_code == 404


def test_galleries_members_are_listed_in_pages(sited: Central) -> None:
    create(sited, "staff", ["north"])
    with sited.db() as conn:
        people = sorted(str(add_person(conn, f"p{i}")) for i in range(3))
    for person in people:
        add(sited, "staff", UUID(person))
    first = sited.client.get(f"{API}/staff/people", params={"limit": 2}, headers=sited.admin).json()
    rest = sited.client.get(
        f"{API}/staff/people", params={"limit": 2, "after": first["next"]}, headers=sited.admin
    ).json()
    assert [m["person_id"] for m in first["items"] + rest["items"]] == people
    assert rest["next"] is None


def test_galleries_changes_are_readable_by_an_edge_of_the_gallery_site_only(sited: Central) -> None:
    create(sited, "staff", ["north"])
    with sited.db() as conn:
        mine, other = add_edge(conn, "north", "door-1"), add_edge(conn, "south", "door-2")
        person = add_person(conn)
    add(sited, "staff", person)
    response = sited.client.get(f"{API}/staff/changes", headers=sited.as_(mine))
    assert response.status_code == 200, response.text
    assert response.json()["current_version"] == 1
    assert [c["version"] for c in response.json()["items"]] == [1]
    refused = sited.client.get(f"{API}/staff/changes", headers=sited.as_(other))
    assert (refused.status_code, refused.json()["code"]) == (403, "gallery_not_allowed")
    assert sited.client.get(f"{API}/staff", headers=sited.as_(mine)).status_code == 403


def test_galleries_every_kind_of_change_gives_versions_without_gaps(sited: Central) -> None:
    create(sited, "staff", ["north"])
    dsn = sited.settings.database_url
    rng = np.random.default_rng(2)
    with sited.db() as conn:
        ada, bob = add_person(conn), add_person(conn)
        add_template(conn, ada, rng)
    add(sited, "staff", ada)  # 1
    add(sited, "staff", bob)  # 2
    bob_template = enroll(dsn, bob, rng)  # 3
    sited.client.patch(f"{API}/staff", json={"sites": ["south"]}, headers=sited.admin)  # 4
    delete_template(dsn, bob, bob_template)  # 5
    sited.client.delete(f"{API}/staff/people/{ada}", headers=sited.admin)  # 6
    enroll(dsn, ada, rng)  # not a member any more: no version
    with sited.db() as conn:
        assert versions(conn, "staff") == [1, 2, 3, 4, 5, 6]
    counts = [(c["upserts"], c["deleted_templates"], c["deleted_people"]) for c in changes(sited, "staff")]
    assert counts == [(1, 0, 0), (0, 0, 0), (1, 0, 0), (0, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert [c["version"] for c in changes(sited, "staff", after=4)] == [5, 6]


def test_galleries_concurrent_appends_get_distinct_versions_without_gaps(sited: Central) -> None:
    create(sited, "staff", ["north"])
    bodies = [change_body(deleted_people=[UUID(int=i)]) for i in range(20)]
    bodies += [sites_change(["north"]) for _ in range(5)]
    got = append_concurrently(sited.settings.database_url, "staff", bodies)
    assert sorted(got) == list(range(1, 26))
    with sited.db() as conn:
        assert versions(conn, "staff") == list(range(1, 26))


def test_galleries_concurrent_member_adds_over_http_get_one_version_each(sited: Central) -> None:
    create(sited, "staff", ["north"])
    with sited.db() as conn:
        people = [add_person(conn) for _ in range(8)]
    codes: list[int] = []

    def worker(person: UUID) -> None:
        codes.append(add(sited, "staff", person).status_code)
        codes.append(add(sited, "staff", person).status_code)  # idempotent repeat: no version

    threads = [threading.Thread(target=worker, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 16
    with sited.db() as conn:
        assert versions(conn, "staff") == list(range(1, 9))


def test_galleries_delete_needs_admin_and_removes_log_and_audits(sited: Central) -> None:
    create(sited, "staff", ["north"])
    operator = sited.key("operator")
    assert sited.client.delete(f"{API}/staff", headers=sited.as_(operator)).status_code == 403
    assert sited.client.delete(f"{API}/staff", headers=sited.admin).status_code == 204
    assert sited.client.get(f"{API}/staff", headers=sited.admin).status_code == 404
    with sited.db() as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE target_type = 'gallery'")]
    assert actions == ["gallery.create", "gallery.delete"]
