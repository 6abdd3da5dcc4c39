"""SQL and format metacharacters in every free-text field and text filter: stored and returned exactly,
or refused with a 4xx and a message where the field is an id (a slug); never a 5xx, never executed."""

from __future__ import annotations

import pytest

from tests.support.central_app import Central

AWKWARD = '\'; DROP TABLE sites; -- %s %(x)s \\ "q" $1 ünïcødé 🙂'


@pytest.fixture
def site(central: Central) -> str:
    response = central.client.post("/api/v1/sites", json={"id": "s1", "name": AWKWARD}, headers=central.admin)
    assert response.status_code == 201, response.text
    return "s1"


def test_text_site_name_round_trips(central: Central, site: str) -> None:
    assert central.client.get(f"/api/v1/sites/{site}", headers=central.admin).json()["name"] == AWKWARD
    renamed = central.client.patch(
        f"/api/v1/sites/{site}", json={"name": AWKWARD[::-1]}, headers=central.admin
    )
    assert renamed.status_code == 200, renamed.text
    assert central.client.get(f"/api/v1/sites/{site}", headers=central.admin).json()["name"] == AWKWARD[::-1]


def test_text_edge_name_round_trips(central: Central, site: str) -> None:
    created = central.client.post(
        f"/api/v1/sites/{site}/edges", json={"id": "e1", "name": AWKWARD}, headers=central.admin
    )
    assert created.status_code == 201, created.text
    assert (
        central.client.get(f"/api/v1/sites/{site}/edges/e1", headers=central.admin).json()["name"] == AWKWARD
    )


def test_text_gallery_name_round_trips(central: Central, site: str) -> None:
    created = central.client.post(
        "/api/v1/galleries", json={"id": "g1", "name": AWKWARD, "sites": [site]}, headers=central.admin
    )
    assert created.status_code == 201, created.text
    assert central.client.get("/api/v1/galleries/g1", headers=central.admin).json()["name"] == AWKWARD


def test_text_key_name_round_trips(central: Central) -> None:
    created = central.client.post(
        "/api/v1/auth/keys", json={"scope": "viewer", "name": AWKWARD}, headers=central.admin
    )
    assert created.status_code == 201, created.text
    names = [k["name"] for k in central.client.get("/api/v1/auth/keys", headers=central.admin).json()]
    assert AWKWARD in names


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/sites", {"id": AWKWARD, "name": "x"}),
        ("/api/v1/galleries", {"id": AWKWARD, "name": "x", "sites": []}),
        ("/api/v1/auth/keys", {"scope": AWKWARD}),
    ],
)
def test_text_metacharacters_in_an_id_get_400_with_the_field(
    central: Central, path: str, body: dict[str, object]
) -> None:
    response = central.client.post(path, json=body, headers=central.admin)
    assert response.status_code == 400, response.text
    assert response.json()["message"]
    with central.db() as conn:
        assert conn.execute("SELECT count(*) FROM sites").fetchone() == (0,)


def test_text_control_characters_in_a_name_are_refused(central: Central) -> None:
    response = central.client.post(
        "/api/v1/sites", json={"id": "s2", "name": "a\x00b"}, headers=central.admin
    )
    assert response.status_code == 400
    assert response.json()["message"]


@pytest.mark.parametrize(
    "query",
    [
        {"camera": AWKWARD},
        {"site": AWKWARD},
        {"site": "s1", "edge": AWKWARD},
        {"cursor": AWKWARD},
        {"since": AWKWARD},
        {"person_id": AWKWARD},
    ],
)
def test_text_metacharacters_in_event_filters_never_5xx(
    central: Central, site: str, query: dict[str, str]
) -> None:
    response = central.client.get("/api/v1/events", params=query, headers=central.admin)
    assert response.status_code in {200, 400, 422}, response.text
    if response.status_code == 200:
        assert response.json()["items"] == []
    else:
        assert response.json()["message"]
    with central.db() as conn:
        assert conn.execute("SELECT count(*) FROM sites").fetchone() == (1,)
