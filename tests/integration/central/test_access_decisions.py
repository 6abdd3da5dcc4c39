"""Access decisions pinned (docs/security.md): site-restricted keys read only the people of their sites'
galleries; viewers do not download gallery snapshots; a revoked key's tokens stop with the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.services import PostgresService, RedisService, S3Service
from tests.support.central_app import Central, shared_central

API = "/api/v1"


@pytest.fixture(scope="module")
def central(
    postgres_server: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[Central]:
    with shared_central(postgres_server, s3_server, redis_server, model_dir) as started:
        with started.db() as conn:
            conn.execute("INSERT INTO sites (id, name) VALUES ('north', 'North'), ('south', 'South')")
        for gallery, sites in (("g-north", ["north"]), ("g-south", ["south"])):
            body = {"id": gallery, "name": gallery, "sites": sites}
            assert (
                started.client.post(f"{API}/galleries", json=body, headers=started.admin).status_code == 201
            )
        yield started


def _person(central: Central, external_id: str, galleries: list[str]) -> str:
    body = {"external_id": external_id, "galleries": galleries}
    response = central.client.post(f"{API}/people", json=body, headers=central.admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_access_site_restricted_key_reads_only_people_of_its_sites_galleries(central: Central) -> None:
    seen, other, loose = (
        _person(central, "n-1", ["g-north"]),
        _person(central, "s-1", ["g-south"]),
        _person(central, "none-1", []),
    )
    north = central.as_(central.key("viewer", ["north"]))
    listed = {p["id"] for p in central.client.get(f"{API}/people?limit=500", headers=north).json()["items"]}
    assert seen in listed and other not in listed and loose not in listed
    for path in ("", "/photos", "/templates"):
        assert central.client.get(f"{API}/people/{seen}{path}", headers=north).status_code == 200, path
        for hidden in (other, loose):
            response = central.client.get(f"{API}/people/{hidden}{path}", headers=north)
            assert response.status_code == 404, path
            assert response.json()["code"] == "person_not_found"
    everyone = central.as_(central.key("viewer"))
    listed = {
        p["id"] for p in central.client.get(f"{API}/people?limit=500", headers=everyone).json()["items"]
    }
    assert {seen, other, loose} <= listed


def test_access_viewers_may_not_download_snapshots_operators_may(central: Central) -> None:
    _person(central, "n-2", ["g-north"])
    url = f"{API}/galleries/g-north/snapshot"
    viewer = central.client.get(url, headers=central.as_(central.key("viewer")))
    assert viewer.status_code == 403
    assert viewer.json()["code"] == "insufficient_scope"
    for scope in ("operator", "admin"):
        answer = central.client.get(url, headers=central.as_(central.key(scope)))
        assert answer.status_code == 200, (scope, answer.text)


def test_access_revoked_keys_tokens_stop_with_the_key(central: Central) -> None:
    key = central.key("viewer", name="to revoke")
    issued = central.client.post(f"{API}/auth/token", headers=central.as_(key)).json()
    token = central.as_(issued["access_token"])
    assert central.client.get(f"{API}/sites", headers=token).status_code == 200
    prefix = key.split("_")[1]
    assert central.client.delete(f"{API}/auth/keys/{prefix}", headers=central.admin).status_code == 200
    assert central.client.get(f"{API}/sites", headers=central.as_(key)).status_code == 401
    refused = central.client.get(f"{API}/sites", headers=token)
    assert refused.status_code == 401  # at once on this replica, within FACEGATE_KEY_CACHE_S on others
    assert refused.json()["code"] == "revoked"
