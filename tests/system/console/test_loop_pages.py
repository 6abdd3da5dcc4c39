"""The operator loop's console pages (docs/operator-loop.md) in a real Chromium against a real central on a
PostgreSQL with pgvector: correcting an event (wrong person, this is...), the unknown-face groups
(listed, opened, enrolled as a person) and search by photo. One central and one browser for the module;
every page is checked with axe-core and for CSP refusals."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
from numpy.typing import NDArray
from playwright.sync_api import Browser, expect

from central.auth.repository import create_key_sync
from central.runtime import open_object_store
from central.settings import CentralSettings
from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from devtools.services import PostgresService, RedisService, S3Service, postgres, redis, s3
from devtools.services.central import serve
from tests.support.browser import Watched, check_page, drop_files, launch, sign_in
from tests.support.central_app import make_settings, s3_settings
from tests.support.faces import read
from tests.support.ingest_rig import wait_for
from tests.support.operator_loop import insert_event

Samples = dict[str, SamplePhoto]


@dataclass
class Rig:
    base: str
    settings: CentralSettings
    admin: str
    browser: Browser

    @property
    def dsn(self) -> str:
        return self.settings.database_url

    def key(self, scope: str) -> str:
        with psycopg.connect(self.dsn) as conn:
            return create_key_sync(conn, f"loop {scope}", scope).display

    def open(self, key: str) -> Watched:
        watched = Watched.open(self.browser, self.base)
        sign_in(watched.page, key)
        return watched

    def event(self, embedding: NDArray[np.float32], **fields: object) -> str:
        return insert_event(self.dsn, open_object_store(self.settings), embedding, **fields)  # type: ignore[arg-type]

    def one(self, sql: str, *args: object) -> object:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(sql, args).fetchone()
        assert row is not None
        return row[0]


@pytest.fixture(scope="module")
def rig(
    vector_postgres: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[Rig]:
    db = postgres.create_database(vector_postgres)
    bucket = s3.create_bucket(s3_server)
    redis_db = redis.claim_database(redis_server)
    try:
        settings = make_settings(db, s3_settings(s3_server, bucket), model_dir, redis_url=redis_db.url)
        with serve(settings) as base, launch() as browser:
            with psycopg.connect(db.dsn) as conn:
                admin = create_key_sync(conn, "loop admin", "admin").display
            yield Rig(base, settings, admin, browser)
    finally:
        redis.release_database(redis_db)
        s3.remove_bucket(s3_server, bucket)
        postgres.drop_database(vector_postgres, db.dbname)


@pytest.fixture(scope="module")
def faces(pipeline: FacePipeline, samples: Samples) -> dict[str, NDArray[np.float32]]:
    out: dict[str, NDArray[np.float32]] = {}
    for name in ("obama2", "obama3", "biden", "grace_hopper"):
        found = [f.embedding for f in pipeline.process(read(samples[name].path)) if f.embedding is not None]
        out[name] = found[0]
    return out


def assert_clean(watched: Watched) -> None:
    assert check_page(watched.page) == []
    assert watched.csp_violations() == []
    assert watched.errors == []


def add_person(watched: Watched, external: str, name: str, photo: Path | None = None) -> str:
    page = watched.page
    page.goto("/console/people")
    page.get_by_role("textbox", name="External id", exact=True).fill(external)
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_role("textbox", name="Name", exact=True).press("Enter")
    page.wait_for_url(re.compile(r".*/console/people/[0-9a-f-]{36}$"))
    person = page.url.rsplit("/", 1)[1]
    if photo is not None:
        drop_files(page, "#enroll", [(photo.name, photo.read_bytes(), "image/jpeg")])
        expect(page.locator("li.result-accepted")).to_be_visible(timeout=20_000)
    return person


def test_console_event_wrong_person_then_this_is_with_template(
    rig: Rig, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    watched = rig.open(rig.admin)
    page = watched.page
    obama = add_person(watched, f"obama-{uuid.uuid4().hex[:6]}", "Barack Obama", samples["obama2"].path)
    wrong = rig.event(faces["biden"], person_id=obama)
    page.goto(f"/console/events/{wrong}")
    assert_clean(watched)
    page.get_by_role("button", name="Wrong person").click()
    page.wait_for_url(f"**/console/events/{wrong}?corrected=*")
    expect(page.locator("#corrections-title + table")).to_contain_text(
        "not Barack Obama (negative example sent"
    )
    assert rig.one("SELECT count(*) FROM person_negatives WHERE person_id = %s", obama) == 1
    eileen = add_person(watched, f"eileen-{uuid.uuid4().hex[:6]}", "Eileen Collins")
    crop = samples["astronaut"].path.read_bytes()
    unknown = rig.event(faces["grace_hopper"], crop=crop)
    page.goto(f"/console/events/{unknown}")
    page.get_by_role("textbox", name="External id").first.fill(
        str(rig.one("SELECT external_id FROM people WHERE id = %s", eileen))
    )
    page.get_by_role("checkbox", name="Add this crop as a template").first.check()
    page.get_by_role("button", name="This is them").click()
    page.wait_for_url(f"**/console/events/{unknown}?corrected=*")
    expect(page.locator("#corrections-title + table")).to_contain_text("this is Eileen Collins")
    expect(page.locator("#corrections-title + table")).to_contain_text("accepted")
    assert_clean(watched)
    watched.close()


def test_console_unknown_faces_grouped_then_enrolled_as_a_person(
    rig: Rig, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    crop = samples["obama3"].path.read_bytes()
    seen = [rig.event(faces["obama3"], site="north", crop=crop), rig.event(faces["obama2"], site="south")]
    grouped = (
        "SELECT count(DISTINCT cluster_id) FROM event_embeddings"
        " WHERE event_id = ANY(%s::uuid[]) AND cluster_id IS NOT NULL"
    )
    wait_for(lambda: rig.one(grouped, seen) == 1, 10, "the two sightings grouped")
    group = rig.one("SELECT cluster_id FROM event_embeddings WHERE event_id = %s", seen[0])
    watched = rig.open(rig.admin)
    page = watched.page
    page.goto("/console/clusters")
    expect(page.get_by_role("link", name=f"Group {group}")).to_be_visible()
    assert_clean(watched)
    page.get_by_role("link", name=f"Group {group}").click()
    expect(page.get_by_role("heading", name=re.compile(f"Group {group}"))).to_be_visible()
    assert_clean(watched)
    page.get_by_label("External id").first.fill(f"visitor-{uuid.uuid4().hex[:6]}")
    page.get_by_label("Name", exact=True).fill("Frequent visitor")
    page.get_by_role("button", name="Enroll").click()
    page.wait_for_url(re.compile(r".*/console/people/[0-9a-f-]{36}$"))
    person = page.url.rsplit("/", 1)[1]
    assert rig.one("SELECT count(*) FROM event_embeddings WHERE person_id = %s", person) == 2
    watched.close()


def test_console_search_by_photo_lists_people_and_sightings_for_operators_only(
    rig: Rig, samples: Samples, faces: dict[str, NDArray[np.float32]]
) -> None:
    watched = rig.open(rig.admin)
    page = watched.page
    hopper = add_person(
        watched, f"hopper-{uuid.uuid4().hex[:6]}", "Grace Hopper", samples["grace_hopper"].path
    )
    sighting = rig.event(faces["grace_hopper"], site="north", crop=samples["grace_hopper"].path.read_bytes())
    page.goto("/console/search")
    assert_clean(watched)
    page.get_by_label("Photo with one face").set_input_files(str(samples["grace_hopper"].path))
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="Grace Hopper").first).to_be_visible()
    expect(page.locator(f"a[href='/console/events/{sighting}']")).to_be_visible()
    assert_clean(watched)
    assert rig.one("SELECT count(*) FROM audit_log WHERE action = 'search.photo'") == 1
    assert hopper
    watched.close()
    viewer = rig.open(rig.key("viewer"))
    expect(viewer.page.get_by_role("link", name="Search")).to_have_count(0)
    viewer.close()
