"""People CRUD over the real app: validation, exact round trips, pagination, scopes, site restriction."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.central_app import Central
from tests.support.enroll_photos import PEOPLE, new_person

AWKWARD = '\'; DROP TABLE people; -- %s %(x)s \\ \\\\ "q" ünïcødé 🙂'


def get(central: Central, person_id: str, headers: dict[str, str] | None = None) -> Any:
    return central.client.get(f"{PEOPLE}/{person_id}", headers=headers or central.admin)


def test_people_create_returns_201_and_reads_back(central: Central) -> None:
    created = new_person(central, "emp-1", display_name="Ada", metadata={"team": "ops", "n": [1, 2]})
    assert created["external_id"] == "emp-1"
    assert created["template_count"] == 0
    assert created["galleries"] == []
    fetched = get(central, created["id"]).json()
    assert fetched == created


def test_people_sql_metacharacters_round_trip_exactly(central: Central) -> None:
    metadata = {AWKWARD: AWKWARD, "nested": {"k": [AWKWARD, "%%", "$1"]}}
    created = new_person(central, AWKWARD, display_name=AWKWARD, metadata=metadata)
    fetched = get(central, created["id"]).json()
    assert (fetched["external_id"], fetched["display_name"], fetched["metadata"]) == (
        AWKWARD,
        AWKWARD,
        metadata,
    )
    with central.db() as conn:
        assert conn.execute("SELECT count(*) FROM people").fetchone() == (1,)


@pytest.mark.parametrize(
    "body",
    [
        {"external_id": "nul\x00id"},
        {"external_id": "ok", "display_name": "nul\x00name"},
        {"external_id": "ok", "metadata": {"k": "nul\x00value"}},
        {"external_id": ""},
        {"external_id": "x" * 201},
        {"external_id": "ok", "colour": "red"},
    ],
)
def test_people_create_with_bad_text_is_4xx_and_stores_nothing(
    central: Central, body: dict[str, Any]
) -> None:
    response = central.client.post(PEOPLE, json=body, headers=central.admin)
    assert response.status_code in {400, 422}, response.text
    assert response.json()["message"]
    with central.db() as conn:
        assert conn.execute("SELECT count(*) FROM people").fetchone() == (0,)


def test_people_oversize_metadata_is_422(central: Central) -> None:
    body = {"external_id": "big", "metadata": {"blob": "x" * 20_000}}
    response = central.client.post(PEOPLE, json=body, headers=central.admin)
    assert response.status_code == 422
    assert "16384" in response.json()["message"]


def test_people_duplicate_external_id_is_409(central: Central) -> None:
    new_person(central, "dup")
    response = central.client.post(PEOPLE, json={"external_id": "dup"}, headers=central.admin)
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_external_id"


def test_people_update_changes_only_given_fields(central: Central) -> None:
    created = new_person(central, "u1", display_name="Old", metadata={"a": 1})
    response = central.client.patch(
        f"{PEOPLE}/{created['id']}", json={"display_name": "New"}, headers=central.admin
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["external_id"], body["display_name"], body["metadata"]) == ("u1", "New", {"a": 1})
    with central.db() as conn:
        row = conn.execute("SELECT details FROM audit_log WHERE action = 'person.update'").fetchone()
    assert row == ({"fields": ["display_name"]},)


def test_people_update_to_a_taken_external_id_is_409(central: Central) -> None:
    new_person(central, "taken")
    other = new_person(central, "free")
    response = central.client.patch(
        f"{PEOPLE}/{other['id']}", json={"external_id": "taken"}, headers=central.admin
    )
    assert response.status_code == 409
    assert get(central, other["id"]).json()["external_id"] == "free"


def test_people_pages_cover_everyone_once(central: Central) -> None:
    made = [new_person(central, f"p{i}")["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = central.client.get(PEOPLE, params=params, headers=central.admin).json()
        seen += [p["id"] for p in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == made


def test_people_bad_cursor_is_422(central: Central) -> None:
    response = central.client.get(PEOPLE, params={"cursor": "not-a-cursor"}, headers=central.admin)
    assert response.status_code == 422
    assert "cursor" in response.json()["message"]


def test_people_limit_out_of_range_is_400(central: Central) -> None:
    assert central.client.get(PEOPLE, params={"limit": 0}, headers=central.admin).status_code == 400


def test_people_viewer_reads_but_cannot_write(central: Central) -> None:
    created = new_person(central, "v1")
    viewer = central.as_(central.key("viewer"))
    assert get(central, created["id"], viewer).status_code == 200
    assert central.client.post(PEOPLE, json={"external_id": "v2"}, headers=viewer).status_code == 403
    response = central.client.patch(f"{PEOPLE}/{created['id']}", json={"display_name": "x"}, headers=viewer)
    assert response.status_code == 403


def test_people_site_restricted_key_reads_its_sites_people_but_cannot_write(central: Central) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('branch-1', 'Branch')")
        conn.execute("INSERT INTO galleries (id, name, model_id) VALUES ('branch', 'B', 'sface-2021dec')")
        conn.execute("INSERT INTO gallery_sites (gallery_id, site_id) VALUES ('branch', 'branch-1')")
    created = new_person(central, "s1", galleries=["branch"])
    new_person(central, "elsewhere")
    operator = central.as_(central.key("operator", ["branch-1"]))
    listed = central.client.get(PEOPLE, headers=operator).json()
    assert [p["id"] for p in listed["items"]] == [created["id"]]  # not the person in no branch gallery
    response = central.client.post(PEOPLE, json={"external_id": "s2"}, headers=operator)
    assert response.status_code == 403
    assert response.json()["code"] == "site_restricted"


def test_people_created_into_galleries_are_members(central: Central) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO galleries (id, name, model_id) VALUES ('staff', 'Staff', 'sface-2021dec')")
    created = new_person(central, "g1", galleries=["staff"])
    assert created["galleries"] == ["staff"]
    response = central.client.post(
        PEOPLE, json={"external_id": "g2", "galleries": ["nowhere"]}, headers=central.admin
    )
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_gallery"


def test_people_unknown_or_erased_person_is_404(central: Central) -> None:
    created = new_person(central, "gone")
    assert central.client.delete(f"{PEOPLE}/{created['id']}", headers=central.admin).status_code == 200
    assert get(central, created["id"]).status_code == 404
    patched = central.client.patch(
        f"{PEOPLE}/{created['id']}", json={"display_name": "x"}, headers=central.admin
    )
    assert patched.status_code == 404
    assert central.client.get(PEOPLE, headers=central.admin).json()["items"] == []
    assert get(central, "00000000-0000-0000-0000-000000000000").json()["code"] == "person_not_found"
    assert new_person(central, "gone")["id"] != created["id"]  # the external id is free again


def test_people_routes_are_in_the_openapi_schema(central: Central) -> None:
    paths = central.client.get("/schema/openapi.json").json()["paths"]
    assert {"/api/v1/people", "/api/v1/people/{person_id}", "/api/v1/people/{person_id}/photos"} <= set(paths)
    assert "patch" in paths["/api/v1/people/{person_id}"]
