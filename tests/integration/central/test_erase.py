"""Erasing a person: every row and object holding their face data goes, events stay as tombstones."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from central.cleanup.service import CleanupService
from central.storage import crop_key, snapshot_key
from demo.sample_faces import SamplePhoto
from tests.support.central_app import Central
from tests.support.enroll_photos import PEOPLE, enroll, keys, new_person, photo, store

Samples = dict[str, SamplePhoto]
_EVENT = """
INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, person_id, score, threshold,
                    quality, bbox, model_id, crop_key)
VALUES (%s, %s, 's1', 'e1', 'door', 1, 'recognized', %s, 0.8, 0.36, 0.9, '{1,2,3,4}', 'sface-2021dec', %s)
"""


def add_event(central: Central, person_id: str) -> str:
    """A recognition event of the person with a stored crop; returns the crop key."""
    event_id, ts = uuid4(), datetime.now(UTC)
    key = crop_key(event_id, ts)
    store(central).put(key, b"\xff\xd8 crop bytes", "image/jpeg")
    with central.db() as conn:
        conn.execute(_EVENT, (event_id, ts, person_id, key))
    return key


def add_snapshot(central: Central, gallery: str, version: int) -> str:
    key = snapshot_key(gallery, version)
    data = b"snapshot with embeddings"
    store(central).put(key, data)
    with central.db() as conn:
        conn.execute(
            "INSERT INTO snapshots (gallery_id, version, object_key, sha256, size_bytes, template_count)"
            " VALUES (%s, %s, %s, %s, %s, 1)",
            (gallery, version, key, hashlib.sha256(data).hexdigest(), len(data)),
        )
    return key


def erase(central: Central, person_id: str, headers: dict[str, str] | None = None) -> Any:
    return central.client.delete(f"{PEOPLE}/{person_id}", headers=headers or central.admin)


def person_rows(central: Central, person_id: str) -> dict[str, Any]:
    with central.db() as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql, (person_id,)).fetchone()
            assert row is not None
            return row[0]

        return {
            "templates": one("SELECT count(*) FROM templates WHERE person_id = %s"),
            "photos": one("SELECT count(*) FROM enrollment_photos WHERE person_id = %s"),
            "memberships": one("SELECT count(*) FROM gallery_people WHERE person_id = %s"),
            "crops": one("SELECT count(crop_key) FROM events WHERE person_id = %s"),
            "live_events": one("SELECT count(*) FROM events WHERE person_id = %s AND erased_at IS NULL"),
            "events": one("SELECT count(*) FROM events WHERE person_id = %s"),
            "pending": one("SELECT count(*) FROM pending_deletions WHERE person_id = %s"),
            "person": one(
                "SELECT row(external_id, display_name, metadata::text) FROM people"
                " WHERE id = %s AND deleted_at IS NOT NULL"
            ),
        }


def test_erase_removes_all_face_data_and_keeps_event_tombstones(central: Central, samples: Samples) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO galleries (id, name, model_id) VALUES ('staff', 'Staff', 'sface-2021dec')")
    person = new_person(central, "erase-me", display_name="Barack", metadata={"k": "v"}, galleries=["staff"])
    other = new_person(central, "keep-me", galleries=["staff"])
    for name in ("obama", "obama3"):
        assert enroll(central, person["id"], f"{name}.jpg", photo(samples, name))["status"] == "accepted"
    assert enroll(central, other["id"], "biden.jpg", photo(samples, "biden"))["status"] == "accepted"
    crops = [add_event(central, person["id"]) for _ in range(2)]
    other_crop = add_event(central, other["id"])
    snapshot = add_snapshot(central, "staff", 3)

    response = erase(central, person["id"])

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["templates"], report["photos"], report["events_tombstoned"], report["snapshots"]) == (
        2,
        2,
        2,
        1,
    )
    rows = person_rows(central, person["id"])
    assert rows == {
        "templates": 0,
        "photos": 0,
        "memberships": 0,
        "crops": 0,
        "live_events": 0,
        "events": 2,
        "pending": 0,
        "person": (None, "", "{}"),
    }
    with central.db() as conn:
        assert conn.execute("SELECT count(*) FROM snapshots WHERE gallery_id = 'staff'").fetchone() == (0,)
    assert keys(central, f"photos/{person['id']}/") == []
    assert not any(store(central).exists(key) for key in [*crops, snapshot])
    assert store(central).exists(other_crop)
    assert len(keys(central, f"photos/{other['id']}/")) == 1


def test_erase_appends_deleted_people_to_the_person_galleries(central: Central, samples: Samples) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO galleries (id, name, model_id) VALUES ('g1', 'G1', 'sface-2021dec')")
    person = new_person(central, "member", galleries=["g1"])
    enroll(central, person["id"], "o.jpg", photo(samples, "obama"))
    report = erase(central, person["id"]).json()
    with central.db() as conn:
        row = conn.execute(
            "SELECT version, change->'deleted_people' FROM gallery_changes WHERE gallery_id = 'g1'"
            " ORDER BY version DESC LIMIT 1"
        ).fetchone()
        actions = [
            r[0] for r in conn.execute("SELECT action FROM audit_log WHERE target_id = %s", (person["id"],))
        ]
    assert row == (report["gallery_versions"]["g1"], [person["id"]])
    assert actions[-1] == "person.erase"


def test_erase_twice_is_idempotent(central: Central) -> None:
    person = new_person(central, "twice")
    assert erase(central, person["id"]).status_code == 200
    again = erase(central, person["id"])
    assert again.status_code == 200
    assert again.json()["already_erased"] is True


def test_erase_needs_admin(central: Central) -> None:
    person = new_person(central, "protected")
    response = erase(central, person["id"], central.as_(central.key("operator")))
    assert response.status_code == 403
    assert central.client.get(f"{PEOPLE}/{person['id']}", headers=central.admin).status_code == 200


def test_erase_unknown_person_is_404(central: Central) -> None:
    assert erase(central, str(uuid4())).status_code == 404


def test_erase_reports_objects_it_could_not_delete(central: Central) -> None:
    person = new_person(central, "stuck")
    bad_key = "crops/../not-a-valid-key.jpg"  # the store refuses it, as it would refuse while down
    with central.db() as conn:
        conn.execute(
            "INSERT INTO pending_deletions (object_key, person_id) VALUES (%s, %s)", (bad_key, person["id"])
        )
    response = erase(central, person["id"])
    assert response.status_code == 503
    assert response.json()["code"] == "erase_incomplete"
    assert response.json()["details"]["remaining"] == [bad_key]
    assert central.client.get(f"{PEOPLE}/{person['id']}", headers=central.admin).status_code == 404
    with central.db() as conn:
        attempts = conn.execute("SELECT attempts FROM pending_deletions WHERE object_key = %s", (bad_key,))
        assert attempts.fetchone() == (3,)
    assert erase(central, person["id"]).status_code == 503  # retried on every repeat


def test_erase_frees_the_face_for_another_person(central: Central, samples: Samples) -> None:
    first = new_person(central, "first")
    assert enroll(central, first["id"], "o.jpg", photo(samples, "obama"))["status"] == "accepted"
    second = new_person(central, "second")
    assert enroll(central, second["id"], "o2.jpg", photo(samples, "obama2"))["reason"] == "duplicate_person"
    assert erase(central, first["id"]).status_code == 200
    assert enroll(central, second["id"], "o2.jpg", photo(samples, "obama2"))["status"] == "accepted"


def test_erase_sweeper_deletes_queued_objects_left_behind(central: Central) -> None:
    runtime = central.client.app.state.runtime
    person = new_person(central, "left-behind")
    runtime.store.put(f"photos/{person['id']}/x.jpg", b"face", "image/jpeg")
    runtime.store.put("crops/2026/01/01/orphan.jpg", b"crop", "image/jpeg")
    with central.db() as conn:
        conn.execute(
            "INSERT INTO pending_deletions (object_key, is_prefix, person_id, created_at) VALUES "
            "(%s, true, %s, now() - interval '1 hour'), ('crops/2026/01/01/orphan.jpg', false, NULL, "
            "now() - interval '1 hour'), ('crops/2026/01/01/young.jpg', false, NULL, now())",
            (f"photos/{person['id']}/", person["id"]),
        )
    cleanup: CleanupService = central.client.app.state.cleanup
    remaining = central.client.blocking_portal.call(cleanup.sweep_once)
    assert remaining == 0
    assert list(runtime.store.list(f"photos/{person['id']}/")) == []
    assert not runtime.store.exists("crops/2026/01/01/orphan.jpg")
    with central.db() as conn:
        left = [row[0] for row in conn.execute("SELECT object_key FROM pending_deletions")]
    assert left == ["crops/2026/01/01/young.jpg"]  # too young: its own request purges it


def test_erase_deletes_snapshots_of_galleries_the_person_had_left(central: Central, samples: Samples) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO galleries (id, name, model_id) VALUES ('old', 'Old', 'sface-2021dec')")
    person = new_person(central, "moved-on", galleries=["old"])
    assert enroll(central, person["id"], "o.jpg", photo(samples, "obama"))["status"] == "accepted"
    built = central.client.post("/api/v1/galleries/old/snapshots", headers=central.admin)
    assert built.status_code == 200, built.text
    key = built.json()["object_key"]
    removed = central.client.delete(f"/api/v1/galleries/old/people/{person['id']}", headers=central.admin)
    assert removed.status_code == 200, removed.text
    assert store(central).exists(key)  # the old version still holds the person's embedding
    assert erase(central, person["id"]).status_code == 200
    assert not store(central).exists(key)
    with central.db() as conn:
        assert conn.execute("SELECT count(*) FROM snapshots WHERE gallery_id = 'old'").fetchone() == (0,)
