"""The operator loop on central (docs/operator-loop.md), on a PostgreSQL with pgvector: event embeddings
ingested (and older events without one), corrections with their negatives reaching the gallery deltas,
the crop enrolled through the photo gate, and erase removing embeddings and negatives. One central
serves the module; each test adds people and events of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import numpy as np
import psycopg
import pytest
from numpy.typing import NDArray

from central.distribution.deltas import build_deltas, gallery_state
from common.messages import FaceEmbedding, GalleryChange, embedding_bytes, encode
from common.pipeline.pipeline import FacePipeline
from common.topics import edge_topic
from demo.sample_faces import SamplePhoto
from devtools.services import MosquittoFactory, MqttTestClient, PostgresService, RedisService, S3Service
from devtools.services.endpoints import MqttBroker
from tests.support.central_app import Central
from tests.support.enroll_photos import PEOPLE, enroll, frame, jpeg, new_person, photo
from tests.support.faces import read
from tests.support.ingest_rig import make_event, wait_for
from tests.support.operator_loop import add_event, vector_central

Samples = dict[str, SamplePhoto]
SITE, EDGE = "s1", "e1"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    with MosquittoFactory(tmp_path_factory.mktemp("loop-broker"), docker=False) as factory:
        yield factory(persistence=False).endpoint


@pytest.fixture(scope="module")
def loop(
    vector_postgres: PostgresService,
    s3_server: S3Service,
    redis_server: RedisService,
    model_dir: Path,
    broker: MqttBroker,
) -> Iterator[Central]:
    with vector_central(vector_postgres, s3_server, redis_server, model_dir, broker, {SITE: EDGE}) as central:
        yield central


@pytest.fixture(scope="module")
def faces(pipeline: FacePipeline, samples: Samples) -> dict[str, NDArray[np.float32]]:
    out: dict[str, NDArray[np.float32]] = {}
    for name in ("obama2", "obama3", "biden", "grace_hopper"):
        found = [f.embedding for f in pipeline.process(read(samples[name].path)) if f.embedding is not None]
        out[name] = found[0]  # one face in each
    return out


def gallery_with(central: Central, person: str) -> str:
    gallery = f"g{uuid.uuid4().hex[:8]}"
    body = {"id": gallery, "name": gallery, "sites": [SITE]}
    assert central.client.post("/api/v1/galleries", json=body, headers=central.admin).status_code == 201
    added = central.client.put(f"/api/v1/galleries/{gallery}/people/{person}", headers=central.admin)
    assert added.status_code in (200, 201), added.text
    return gallery


def correct(central: Central, event_id: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return central.client.post(
        f"/api/v1/events/{event_id}/corrections", json=body, headers=headers or central.admin
    )


def one(central: Central, sql: str, *args: object) -> Any:
    with central.db() as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def test_ingest_event_embedding_stored_unit_length_older_event_still_ingested(
    loop: Central, broker: MqttBroker, faces: dict[str, NDArray[np.float32]]
) -> None:
    vector = 3.0 * faces["biden"]  # not unit length: central normalises
    new = make_event(
        SITE, EDGE, 1, embedding=FaceEmbedding(model="sface-2021dec", vector=embedding_bytes(vector))
    )
    old = msgspec.structs.replace(make_event(SITE, EDGE, 2), schema="facegate.event/1")  # an edge before 1.1
    with MqttTestClient(broker) as client:
        for event in (new, old):
            client.publish(edge_topic(SITE, EDGE, "events"), encode(event), qos=1)
        wait_for(
            lambda: (
                one(loop, "SELECT count(*) FROM events WHERE id = ANY(%s::uuid[])", [new.id, old.id]) == 2
            ),
            10,
            "both events stored",
        )
    stored = one(loop, "SELECT embedding FROM event_embeddings WHERE event_id = %s", new.id)
    assert len(stored) == 128 and np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-4)
    assert one(loop, "SELECT vec IS NOT NULL FROM event_embeddings WHERE event_id = %s", new.id)
    assert one(loop, "SELECT count(*) FROM event_embeddings WHERE event_id = %s", old.id) == 0


def test_correction_not_person_negative_in_gallery_delta_and_audited(
    loop: Central, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    obama = new_person(loop, f"obama-{uuid.uuid4().hex[:6]}")["id"]
    assert enroll(loop, obama, "obama2.jpg", photo(samples, "obama2"))["status"] == "accepted"
    gallery = gallery_with(loop, obama)
    event = add_event(loop, faces["biden"], person_id=obama)  # Biden matched as Obama
    answer = correct(loop, event, action="not_person", note="that is Biden")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["wrong_person_id"], body["person_id"], body["created_by"][:4]) == (obama, None, "key:")
    negative = body["negative_id"]
    assert one(loop, "SELECT person_id::text FROM person_negatives WHERE id = %s", negative) == obama
    change = one(
        loop,
        "SELECT change FROM gallery_changes WHERE gallery_id = %s ORDER BY version DESC LIMIT 1",
        gallery,
    )
    assert change["negatives"] == [negative]
    assert one(loop, "SELECT kind FROM events WHERE id = %s", event) == "recognized"  # the decision stays
    assert (
        one(loop, "SELECT count(*) FROM audit_log WHERE action = 'event.correct' AND target_id = %s", event)
        == 1
    )
    listed = loop.client.get(f"/api/v1/events/{event}/corrections", headers=loop.admin).json()["items"]
    assert [c["id"] for c in listed] == [body["id"]]


def test_delta_carries_negative_embedding(
    loop: Central, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    obama = new_person(loop, f"obama-{uuid.uuid4().hex[:6]}")["id"]
    enroll(loop, obama, "obama2.jpg", photo(samples, "obama2"))
    gallery = gallery_with(loop, obama)
    correct(loop, add_event(loop, faces["biden"], person_id=obama), action="not_person")

    async def newest() -> GalleryChange:
        async with await psycopg.AsyncConnection.connect(loop.settings.database_url) as conn:
            state = await gallery_state(conn, gallery)
            assert state is not None
            (delta,) = await build_deltas(conn, state, state.current_version - 1, state.current_version, 10)
            return delta

    delta = anyio.run(newest)
    (negative,) = delta.negatives
    assert delta.schema == "facegate.gallery-change/1.1" and negative.person_id == obama
    unit = faces["biden"] / np.linalg.norm(faces["biden"])
    assert float(negative.vector() @ unit) == pytest.approx(1.0, abs=1e-4)


def test_correction_unknown_is_person_enrolls_crop_through_photo_gate(
    loop: Central, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    eileen = new_person(loop, f"eileen-{uuid.uuid4().hex[:6]}")["id"]
    crop = jpeg(frame(samples, "astronaut"))
    event = add_event(loop, faces["grace_hopper"], crop=crop)
    answer = correct(loop, event, action="is_person", person_id=eileen, add_template=True)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["template_status"], body["person_id"]) == ("accepted", eileen)
    template = body["template_id"]
    assert one(loop, "SELECT count(*) FROM templates WHERE id = %s AND person_id = %s", template, eileen) == 1
    assert one(loop, "SELECT person_id::text FROM event_embeddings WHERE event_id = %s", event) == eileen
    blank = add_event(loop, faces["grace_hopper"], crop=crop[:200])  # not a readable image
    refused = correct(loop, blank, action="is_person", person_id=eileen, add_template=True).json()
    assert (refused["template_status"], refused["template_id"]) == ("bad_image", None)


def test_correction_new_person_created_in_galleries(
    loop: Central, faces: dict[str, NDArray[np.float32]]
) -> None:
    event = add_event(loop, faces["grace_hopper"])
    external = f"grace-{uuid.uuid4().hex[:6]}"
    body = correct(
        loop, event, action="new_person", new_person={"external_id": external, "display_name": "Grace"}
    ).json()
    person = loop.client.get(f"{PEOPLE}/{body['person_id']}", headers=loop.admin).json()
    assert person["external_id"] == external


def test_correction_refusals_say_what_to_do(loop: Central, faces: dict[str, NDArray[np.float32]]) -> None:
    unknown = add_event(loop, faces["biden"])
    refused = correct(loop, unknown, action="not_person")
    assert (refused.status_code, refused.json()["code"]) == (422, "event_unknown")
    missing = correct(loop, str(uuid.uuid4()), action="is_person", person_id=str(uuid.uuid4()))
    assert (missing.status_code, missing.json()["code"]) == (404, "event_not_found")
    no_who = correct(loop, unknown, action="is_person")
    assert no_who.status_code == 422 and "person_id" in no_who.json()["message"]
    viewer = loop.key("viewer")
    denied = correct(loop, unknown, headers=loop.as_(viewer), action="is_person", person_id=str(uuid.uuid4()))
    assert denied.status_code == 403
    other_site = loop.key("operator", ["elsewhere"])
    assert correct(loop, unknown, headers=loop.as_(other_site), action="new_person").status_code == 403


def test_erase_removes_embeddings_negatives_and_matching_unknown_sightings(
    loop: Central, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    grace = new_person(loop, f"grace-{uuid.uuid4().hex[:6]}")["id"]
    assert enroll(loop, grace, "grace.jpg", photo(samples, "grace_hopper"))["status"] == "accepted"
    seen = add_event(loop, faces["grace_hopper"], person_id=grace)
    wrong = add_event(loop, faces["biden"], person_id=grace)
    correct(loop, wrong, action="not_person")
    attributed = add_event(loop, faces["grace_hopper"])
    correct(loop, attributed, action="is_person", person_id=grace)
    sighting = add_event(loop, faces["grace_hopper"], crop=b"\xff\xd8\xff sighting")  # unknown, matches
    stranger = add_event(loop, faces["biden"], crop=b"\xff\xd8\xff stranger")  # unknown, 0.006 to Grace
    erased = loop.client.delete(f"{PEOPLE}/{grace}", headers=loop.admin)
    assert erased.status_code == 200 and erased.json()["sightings"] >= 1
    left = one(
        loop, "SELECT count(*) FROM event_embeddings WHERE event_id = ANY(%s::uuid[])", [seen, attributed]
    )
    assert left == 0
    assert one(loop, "SELECT count(*) FROM person_negatives WHERE person_id = %s", grace) == 0
    # the unknown sighting matching the templates lost its embedding and crop; the stranger's stayed
    assert one(loop, "SELECT count(*) FROM event_embeddings WHERE event_id = %s", sighting) == 0
    assert one(loop, "SELECT crop_key FROM events WHERE id = %s", sighting) is None
    assert one(loop, "SELECT count(*) FROM event_embeddings WHERE event_id = %s", stranger) == 1
    assert one(loop, "SELECT crop_key FROM events WHERE id = %s", stranger) is not None


def cluster_of(central: Central, event_id: str) -> int | None:
    value = one(central, "SELECT cluster_id FROM event_embeddings WHERE event_id = %s", event_id)
    return None if value is None else int(value)


def test_clusters_group_unknown_faces_across_sites_then_merge_and_enroll(
    loop: Central, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    crop = photo(samples, "obama3")
    obamas = [
        add_event(loop, faces["obama2"], site="cn", ago_s=30),
        add_event(loop, faces["obama3"], site="cn", ago_s=20, crop=crop),
        add_event(loop, faces["obama2"], site="cs", ago_s=10),
    ]
    biden = add_event(loop, faces["biden"], site="cs")
    wait_for(lambda: all(cluster_of(loop, e) is not None for e in [*obamas, biden]), 10, "clustered")
    (obama_cluster,) = {cluster_of(loop, e) for e in obamas}
    assert cluster_of(loop, biden) != obama_cluster
    listed = loop.client.get("/api/v1/unknown-clusters", params={"site": "cn"}, headers=loop.admin).json()
    (found,) = [c for c in listed["items"] if c["id"] == obama_cluster]
    assert {"cn", "cs"} <= set(found["sites"]) and found["members"] >= 3 and found["best_crop_url"]
    detail = loop.client.get(f"/api/v1/unknown-clusters/{obama_cluster}", headers=loop.admin).json()
    assert set(obamas) <= {e["event_id"] for e in detail["events"]}
    before = one(loop, "SELECT members FROM unknown_clusters WHERE id = %s", obama_cluster)
    known = new_person(loop, f"known-{uuid.uuid4().hex[:6]}")["id"]
    correct(loop, obamas[2], action="is_person", person_id=known)  # leaves the group of unknown faces
    assert one(loop, "SELECT members FROM unknown_clusters WHERE id = %s", obama_cluster) == before - 1
    assert cluster_of(loop, obamas[2]) is None
    obamas = obamas[:2]
    elsewhere = loop.key("viewer", ["elsewhere"])
    hidden = loop.client.get(f"/api/v1/unknown-clusters/{obama_cluster}", headers=loop.as_(elsewhere))
    assert hidden.status_code == 404
    joe = new_person(loop, f"joe-{uuid.uuid4().hex[:6]}")["id"]
    merged = loop.client.post(
        f"/api/v1/unknown-clusters/{cluster_of(loop, biden)}/merge",
        json={"person_id": joe},
        headers=loop.admin,
    )
    assert merged.status_code == 200, merged.text
    assert one(loop, "SELECT person_id::text FROM event_embeddings WHERE event_id = %s", biden) == joe
    body = {"external_id": f"visitor-{uuid.uuid4().hex[:6]}", "photos": 1}
    enrolled = loop.client.post(
        f"/api/v1/unknown-clusters/{obama_cluster}/enroll", json=body, headers=loop.admin
    )
    outcome = enrolled.json()
    assert enrolled.status_code == 200 and outcome["events"] >= 2
    assert len(outcome["templates"]) + len(outcome["refused"]) == 1  # accepted, or a duplicate of an Obama
    again = loop.client.post(
        f"/api/v1/unknown-clusters/{obama_cluster}/merge", json={"person_id": joe}, headers=loop.admin
    )
    assert (again.status_code, again.json()["code"]) == (409, "cluster_closed")
    actions = {
        r[0] for r in loop_rows(loop, "SELECT action FROM audit_log WHERE target_type = 'unknown_cluster'")
    }
    assert actions == {"cluster.merge", "cluster.enroll"}


def loop_rows(central: Central, sql: str) -> list[tuple[Any, ...]]:
    with central.db() as conn:
        return conn.execute(sql).fetchall()


def search(central: Central, data: bytes, headers: dict[str, str] | None = None, **params: Any) -> Any:
    files = {"photo": ("query.jpg", data, "image/jpeg")}
    return central.client.post("/api/v1/search", files=files, params=params, headers=headers or central.admin)


def test_search_by_photo_finds_people_and_events_in_scope_and_is_audited(
    loop: Central, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    hopper = new_person(loop, f"hopper-{uuid.uuid4().hex[:6]}")["id"]
    enroll(loop, hopper, "grace.jpg", photo(samples, "grace_hopper"))
    here = add_event(loop, faces["grace_hopper"], site="sa")
    there = add_event(loop, faces["grace_hopper"], site="sb")
    add_event(loop, faces["biden"], site="sa")
    query = photo(samples, "grace_hopper")
    answer = search(loop, query)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["people"][0]["person_id"] == hopper and found["people"][0]["match"]
    assert {here, there} <= {e["event_id"] for e in found["events"]}
    assert all(e["score"] >= found["threshold"] for e in found["events"])
    only_sa = {e["event_id"] for e in search(loop, query, site="sa").json()["events"]}
    assert here in only_sa and there not in only_sa
    restricted = loop.key("operator", ["sb"])
    scoped = {e["site"] for e in search(loop, query, loop.as_(restricted)).json()["events"]}
    assert scoped == {"sb"}
    assert search(loop, query, loop.as_(restricted), site="sa").status_code == 403
    assert search(loop, query, loop.as_(loop.key("viewer"))).status_code == 403
    audited = one(loop, "SELECT count(*) FROM audit_log WHERE action = 'search.photo'")
    assert audited >= 3  # the three searches answered (refused ones are not searches)
    faceless = search(loop, jpeg(np.full((200, 200, 3), 90, np.uint8)))
    assert (faceless.status_code, faceless.json()["code"]) == (422, "no_face")
