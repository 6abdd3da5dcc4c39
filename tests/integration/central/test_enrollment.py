"""Enrollment photos through the real pipeline on real faces: outcomes, storage, limits, templates."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID, uuid4

import pytest

from central.enrollment.analysis import AcceptedFace, analyse_photo, sha256_hex
from central.enrollment.service import EnrollmentService
from central.errors import NotFound
from central.people.service import PeopleService
from central.runtime import Runtime
from central.settings import CentralSettings
from common.pipeline.image import ImageLimits
from demo.sample_faces import SamplePhoto
from tests.support.central_app import Central, start_central
from tests.support.enroll_photos import (
    PEOPLE,
    enroll,
    keys,
    landscape,
    new_person,
    photo,
    tiny_blurred_face,
    two_faces,
    upload,
)

Samples = dict[str, SamplePhoto]


def runtime_of(central: Central) -> Runtime:
    runtime: Runtime = central.client.app.state.runtime
    return runtime


def enrollment_of(central: Central) -> EnrollmentService:
    enrollment: EnrollmentService = central.client.app.state.enrollment
    return enrollment


def test_enroll_good_photo_is_accepted_with_template_and_object(central: Central, samples: Samples) -> None:
    person = new_person(central, "obama")
    result = enroll(central, person["id"], "obama.jpg", photo(samples, "obama"))
    assert result["status"] == "accepted", result
    assert result["filename"] == "obama.jpg"
    assert 0.5 < result["quality"] <= 1.0
    with central.db() as conn:
        template = conn.execute(
            "SELECT model_id, embedding_size, octet_length(embedding), source_photo_id FROM templates"
            " WHERE id = %s",
            (result["template_id"],),
        ).fetchone()
        key = conn.execute("SELECT object_key FROM enrollment_photos WHERE id = %s", (result["photo_id"],))
        object_key = key.fetchone()[0]  # type: ignore[index]
    assert template == ("sface-2021dec", 128, 512, UUID(result["photo_id"]))
    assert keys(central, f"photos/{person['id']}/") == [object_key]
    metrics = central.client.get("/metrics").text
    assert 'facegate_enrollment_photos_total{outcome="accepted"} 1.0' in metrics


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda s: landscape(), "no_face"),
        (two_faces, "multiple_faces"),
        (tiny_blurred_face, "low_quality"),
        (lambda s: b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10, "bad_image"),
        (lambda s: b"plain text, no image", "bad_image"),
    ],
)
def test_enroll_unusable_photo_is_rejected_with_reason_and_not_stored(
    central: Central, samples: Samples, build: object, reason: str
) -> None:
    person = new_person(central, "someone")
    data = build(samples)  # type: ignore[operator]
    result = enroll(central, person["id"], "x.jpg", data)
    assert result["status"] == "rejected"
    assert result["reason"] == reason, result
    assert result["message"]
    assert result["photo_id"] is None
    assert keys(central, "photos/") == []
    with central.db() as conn:
        assert conn.execute("SELECT count(*) FROM enrollment_photos").fetchone() == (0,)


def test_enroll_low_quality_names_the_gate_reason(central: Central, samples: Samples) -> None:
    person = new_person(central, "blurry")
    result = enroll(central, person["id"], "tiny.jpg", tiny_blurred_face(samples))
    assert result["reason"] == "low_quality"
    assert "blurred" in result["message"]
    assert result["quality"] is not None


def test_enroll_same_face_under_another_person_is_duplicate_person(
    central: Central, samples: Samples
) -> None:
    first = new_person(central, "barack")
    assert enroll(central, first["id"], "obama.jpg", photo(samples, "obama"))["status"] == "accepted"
    second = new_person(central, "impostor")
    result = enroll(central, second["id"], "obama2.jpg", photo(samples, "obama2"))
    assert result["reason"] == "duplicate_person", result
    assert result["similar_person_id"] == first["id"]
    assert first["id"] in result["message"]
    assert keys(central, f"photos/{second['id']}/") == []


def test_enroll_second_photo_of_the_same_person_is_accepted(central: Central, samples: Samples) -> None:
    person = new_person(central, "barack")
    other = new_person(central, "joe")
    assert enroll(central, other["id"], "biden.jpg", photo(samples, "biden"))["status"] == "accepted"
    response = upload(
        central, person["id"], ("a.jpg", photo(samples, "obama")), ("b.jpg", photo(samples, "obama2"))
    )
    assert response.status_code == 200
    assert [r["status"] for r in response.json()] == ["accepted", "accepted"]
    templates = central.client.get(f"{PEOPLE}/{person['id']}/templates", headers=central.admin).json()
    assert len(templates) == 2
    assert "embedding" not in templates[0]


def test_enroll_same_bytes_twice_is_duplicate_photo(central: Central, samples: Samples) -> None:
    person = new_person(central, "grace")
    first = enroll(central, person["id"], "g.jpg", photo(samples, "grace_hopper"))
    again = enroll(central, person["id"], "g-copy.jpg", photo(samples, "grace_hopper"))
    assert again["reason"] == "duplicate_photo"
    assert again["photo_id"] == first["photo_id"]
    assert len(keys(central, f"photos/{person['id']}/")) == 1


def test_enroll_oversize_photo_is_413(central_settings: CentralSettings, samples: Samples) -> None:
    settings = replace(central_settings, max_photo_bytes=64 * 1024)
    for central in start_central(settings):
        person = new_person(central, "big")
        response = upload(central, person["id"], ("big.jpg", photo(samples, "obama")))
        assert response.status_code == 413
        assert response.json()["code"] == "photo_too_large"
        assert "big.jpg" in response.json()["message"]


def test_enroll_too_many_photos_is_413(central_settings: CentralSettings) -> None:
    settings = replace(central_settings, max_photos_per_request=2)
    for central in start_central(settings):
        person = new_person(central, "many")
        response = upload(central, person["id"], *[(f"{i}.jpg", landscape()) for i in range(3)])
        assert response.status_code == 413
        assert response.json()["code"] == "too_many_photos"


def test_enroll_json_body_is_415(central: Central) -> None:
    person = new_person(central, "json")
    response = central.client.post(
        f"{PEOPLE}/{person['id']}/photos", json={"photo": "x"}, headers=central.admin
    )
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["message"]


def test_enroll_by_viewer_is_403(central: Central, samples: Samples) -> None:
    person = new_person(central, "viewed")
    viewer = central.as_(central.key("viewer"))
    response = upload(central, person["id"], ("o.jpg", photo(samples, "obama")), headers=viewer)
    assert response.status_code == 403
    assert keys(central, "photos/") == []


def test_enroll_for_unknown_person_is_404_and_stores_nothing(central: Central, samples: Samples) -> None:
    response = upload(central, str(uuid4()), ("o.jpg", photo(samples, "obama")))
    assert response.status_code == 404
    assert keys(central, "photos/") == []


def test_enroll_failed_transaction_deletes_the_stored_object(central: Central, samples: Samples) -> None:
    runtime = runtime_of(central)
    data = photo(samples, "astronaut")
    face = analyse_photo(runtime.pipeline, data, ImageLimits())
    assert isinstance(face, AcceptedFace)
    missing = uuid4()  # no such person: the transaction fails after the object was stored
    enrollment = enrollment_of(central)
    with pytest.raises(NotFound):
        central.client.blocking_portal.call(
            lambda: enrollment.save_accepted(
                None, missing, data=data, digest=sha256_hex(data), face=face, threshold=0.9
            )
        )
    assert keys(central, "photos/") == []


def test_enroll_service_get_or_create_person_is_idempotent(central: Central, samples: Samples) -> None:
    people: PeopleService = central.client.app.state.people
    portal = central.client.blocking_portal
    first = portal.call(people.get_or_create, None, "bulk-1", "Bulk One")
    again = portal.call(people.get_or_create, None, "bulk-1", "Other Name")
    assert first == again
    result = portal.call(enrollment_of(central).enroll_photo, None, first, "b.jpg", photo(samples, "biden"))
    assert result.status == "accepted"
    person = central.client.get(f"{PEOPLE}/{first}", headers=central.admin).json()
    assert person["display_name"] == "Bulk One"
    assert person["template_count"] == 1


def test_enroll_into_gallery_appends_an_upsert(central: Central, samples: Samples) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO galleries (id, name, model_id) VALUES ('staff', 'Staff', 'sface-2021dec')")
    person = new_person(central, "in-gallery", galleries=["staff"])
    result = enroll(central, person["id"], "o.jpg", photo(samples, "obama"))
    with central.db() as conn:
        rows = conn.execute(
            "SELECT version, change->'upserts' FROM gallery_changes"
            " WHERE gallery_id = 'staff' ORDER BY version"
        ).fetchall()
    assert rows[-1] == (len(rows), [result["template_id"]])


def test_enroll_photos_list_has_working_presigned_urls(central: Central, samples: Samples) -> None:
    person = new_person(central, "listed")
    result = enroll(central, person["id"], "o.jpg", photo(samples, "obama"))
    listed = central.client.get(
        f"{PEOPLE}/{person['id']}/photos", headers=central.as_(central.key("viewer"))
    ).json()
    assert [p["id"] for p in listed] == [result["photo_id"]]
    assert (listed[0]["width"], listed[0]["height"], listed[0]["status"]) == (910, 1137, "accepted")
    assert listed[0]["url"].startswith("http")


def test_enroll_template_delete_removes_photo_and_logs_change(central: Central, samples: Samples) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO galleries (id, name, model_id) VALUES ('g1', 'G1', 'sface-2021dec')")
    person = new_person(central, "trimmed", galleries=["g1"])
    result = enroll(central, person["id"], "o.jpg", photo(samples, "obama"))
    url = f"{PEOPLE}/{person['id']}/templates/{result['template_id']}"
    response = central.client.delete(url, headers=central.admin)
    assert response.status_code == 200, response.text
    assert response.json()["photo_deleted"] is True
    assert keys(central, f"photos/{person['id']}/") == []
    assert central.client.delete(url, headers=central.admin).status_code == 404
    with central.db() as conn:
        change = conn.execute(
            "SELECT change->'upserts', change->'deleted_templates' FROM gallery_changes"
            " WHERE gallery_id = 'g1' ORDER BY version DESC LIMIT 1"
        )
        assert change.fetchone() == ([], [result["template_id"]])
        assert conn.execute("SELECT count(*) FROM enrollment_photos").fetchone() == (0,)


def test_enroll_keeps_the_duplicate_index_in_step_with_the_database(
    central: Central, samples: Samples
) -> None:
    for external_id, name in [("a", "obama"), ("b", "biden"), ("c", "grace_hopper")]:
        person = new_person(central, external_id)
        assert enroll(central, person["id"], f"{name}.jpg", photo(samples, name))["status"] == "accepted"
    cached = enrollment_of(central).index.snapshots["sface-2021dec"]
    with central.db() as conn:
        row = conn.execute(
            "SELECT count(*), sum(('x' || left(id::text, 8))::bit(32)::bigint) FROM templates"
        ).fetchone()
        ids = {r[0] for r in conn.execute("SELECT id FROM templates")}
    assert row is not None
    assert cached.fingerprint == (row[0], int(row[1]))  # the next check needs no refetch
    assert set(cached.ids) == ids
    assert cached.matrix.shape == (3, 128)
