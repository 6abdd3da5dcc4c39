"""Hostile JSON and bodies against the real app: deep nesting, bodies over their route's limit (with and
without Content-Length), ids and names with a trailing newline, lists over their length. Each gets a 4xx
with a message, never a 5xx; the photo upload route keeps its large limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.sample_faces import SamplePhoto
from devtools.services import PostgresService, RedisService, S3Service
from tests.support.central_app import Central, shared_central

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def central(
    postgres_server: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[Central]:
    with shared_central(postgres_server, s3_server, redis_server, model_dir) as started:
        with started.db() as conn:
            conn.execute("INSERT INTO sites (id, name) VALUES ('north', 'North')")
        yield started


def post(central: Central, path: str, body: Any) -> Any:
    return central.client.post(f"/api/v1{path}", json=body, headers=central.admin)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_input_json_nested_100000_deep_in_metadata_is_400_before_decoding(central: Central) -> None:
    body = b'{"external_id": "deep", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = central.client.post(
        "/api/v1/people", content=body, headers={**central.admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "json_too_deep"
    assert "32 levels" in response.json()["message"]


def test_input_metadata_nested_over_8_levels_is_422(central: Central) -> None:
    response = post(central, "/people", {"external_id": "m9", "metadata": {"a": nested(8)}})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "metadata_too_deep"
    allowed = post(central, "/people", {"external_id": "m8", "metadata": {"a": nested(7)}})
    assert allowed.status_code == 201, allowed.text


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body as a generator: httpx sends it chunked, without Content-Length."""
    for at in range(0, len(body), size):
        yield body[at : at + size]


def big_person(size: int) -> bytes:
    return json.dumps({"external_id": "big", "metadata": {"note": "x" * size}}).encode()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_input_json_body_over_1_mib_is_413_naming_the_limit(central: Central, chunked: bool) -> None:
    body = big_person(MIB + 10)
    response = central.client.post(
        "/api/v1/people",
        content=chunks(body) if chunked else body,
        headers={**central.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert f"limit of {MIB} bytes" in response.json()["message"]
    assert "FACEGATE_MAX_BODY_BYTES" in response.json()["message"]


def test_input_photo_upload_still_takes_a_body_over_1_mib(
    central: Central, samples: dict[str, SamplePhoto]
) -> None:
    person = post(central, "/people", {"external_id": "uploader"}).json()["id"]
    files = [
        ("photos", ("hopper.jpg", samples["grace_hopper"].path.read_bytes(), "image/jpeg")),
        ("photos", ("noise.jpg", b"\xff\xd8\xff" + bytes(int(1.5 * MIB)), "image/jpeg")),
    ]
    response = central.client.post(f"/api/v1/people/{person}/photos", files=files, headers=central.admin)
    assert response.status_code == 200, response.text
    results = response.json()
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["reason"] == "bad_image"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/sites", {"id": "south\n", "name": "South"}, "id"),
        ("/sites/north/edges", {"id": "door\n"}, "id"),
        ("/galleries", {"id": "staff\n", "name": "Staff"}, "id"),
        ("/galleries", {"id": "staff", "name": "Staff", "sites": ["north\n"]}, "sites[0]"),
        ("/galleries", {"id": "staff", "name": "Staff", "model_id": "sface-2021dec\n"}, "model_id"),
        ("/people", {"external_id": "E-1\n"}, "external_id"),
        ("/people", {"external_id": "E-1", "display_name": "Alice\n"}, "display_name"),
        ("/people", {"external_id": "E-1", "galleries": ["staff\n"]}, "galleries[0]"),
        ("/auth/keys", {"scope": "viewer", "sites": ["north\n"]}, "sites[0]"),
    ],
)
def test_input_trailing_newline_in_an_id_or_name_is_refused_by_the_schema(
    central: Central, path: str, body: dict[str, Any], field: str
) -> None:
    """`^...$` would let "x\\n" through msgspec (re.search), leaving only the database's domain."""
    response = post(central, path, body)
    assert response.status_code == 400, response.text
    details = response.json()["details"]
    assert [detail["key"] for detail in details] == [field], details
    assert "matching regex" in details[0]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/people", {"external_id": "many", "galleries": [f"g{i}" for i in range(101)]}),
        ("/auth/keys", {"scope": "viewer", "sites": [f"s{i}" for i in range(1001)]}),
    ],
)
def test_input_lists_over_their_length_are_400(central: Central, path: str, body: dict[str, Any]) -> None:
    response = post(central, path, body)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/events", {"camera": "c" * 201}),
        ("/events", {"site": "s" * 65}),
        ("/edges", {"site": "s" * 65}),
        ("/galleries/staff/changes", {"after": str(2**63)}),
    ],
)
def test_input_query_values_over_their_range_are_400(
    central: Central, path: str, params: dict[str, str]
) -> None:
    response = central.client.get(f"/api/v1{path}", params=params, headers=central.admin)
    assert response.status_code == 400, response.text
    assert response.json()["message"]


def test_input_wrong_type_in_a_body_field_named_like_a_service_is_400(central: Central) -> None:
    """Litestar reports an error at `galleries` (also the name of an injected service) as a failed
    dependency, a 500; central/http/errors.py answers it as the body error it is."""
    response = post(central, "/people", {"external_id": "typed", "galleries": [123]})
    assert response.status_code == 400, response.text
    assert response.json()["details"] == [
        {"message": "Expected `str`, got `int`", "key": "galleries[0]", "source": "body"}
    ]


def test_search_and_clusters_without_pgvector_answer_503_naming_what_to_install(central: Central) -> None:
    """The shared PostgreSQL has no pgvector: central runs, and the features that need it say so."""
    files = {"photo": ("q.jpg", b"\xff\xd8\xff not read", "image/jpeg")}
    answers = [
        central.client.get("/api/v1/unknown-clusters", headers=central.admin),
        central.client.post("/api/v1/search", files=files, headers=central.admin),
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()["code"]) == (503, "vector_search_off")
        assert "pgvector" in answer.json()["message"]
