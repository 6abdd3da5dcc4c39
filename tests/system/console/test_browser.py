"""The console in a real Chromium against a real central (uvicorn, PostgreSQL, S3, Redis, the models) fed
by the real ingest: a production edge outbox and publisher sending events over a real broker.

One central and one browser for the whole module (each test opens its own browser context, so cookies
do not leak between tests). Every page is checked with axe-core and for CSP refusals; actions are done
with the keyboard where a user could."""

from __future__ import annotations

import queue
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, expect

from central.auth.repository import create_key_sync
from common.messages import Command, decode
from common.topics import edge_topic
from demo.sample_faces import SamplePhoto
from devtools.services import MqttBroker, PostgresService, RedisService, S3Service, postgres, redis, s3
from devtools.services.central import serve
from tests.support.browser import Watched, check_page, drop_files, launch, sign_in
from tests.support.central_app import make_settings, s3_settings
from tests.support.ingest_rig import EdgeRig, make_event, register_edge
from tests.support.job_archives import build_zip, faceless_png

XSS = "<img src=x onerror=alert(1)>"
NORTH, SOUTH = "north", "south"
LIVE_DEADLINE_S = 2.0


@dataclass
class Rig:
    base: str
    dsn: str
    admin: str
    browser: Browser
    edge: EdgeRig
    broker: MqttBroker

    def key(self, scope: str, sites: tuple[str, ...] = ()) -> str:
        with psycopg.connect(self.dsn) as conn:
            return create_key_sync(conn, f"browser {scope}", scope, sites).display

    def open(self, key: str | None = None) -> Watched:
        watched = Watched.open(self.browser, self.base)
        if key is not None:
            sign_in(watched.page, key)
        return watched


@pytest.fixture(scope="module")
def rig(
    postgres_server: PostgresService,
    s3_server: S3Service,
    redis_server: RedisService,
    mqtt_broker: MqttBroker,
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rig]:
    db = postgres.create_database(postgres_server)
    bucket = s3.create_bucket(s3_server)
    redis_db = redis.claim_database(redis_server)
    try:
        settings = make_settings(db, s3_settings(s3_server, bucket), model_dir, redis_url=redis_db.url)
        settings = replace(
            settings,
            mqtt_url=f"mqtt://{mqtt_broker.host}:{mqtt_broker.port}",
            mqtt_client_id=f"central-console-{uuid.uuid4().hex[:8]}",
            mqtt_shared_group="",
            ingest_flush_s=0.05,
        )
        register_edge(db.dsn, NORTH, "door")
        register_edge(db.dsn, SOUTH, "gate")
        with psycopg.connect(db.dsn) as conn:
            admin = create_key_sync(conn, "browser admin", "admin").display
        edge_dir = tmp_path_factory.mktemp("edge")
        with (
            serve(settings) as base,
            launch() as browser,
            EdgeRig(mqtt_broker, NORTH, "door", edge_dir) as edge,
        ):
            yield Rig(base, db.dsn, admin, browser, edge, mqtt_broker)
    finally:
        redis.release_database(redis_db)
        s3.remove_bucket(s3_server, bucket)
        postgres.drop_database(postgres_server, db.dbname)


def new_person(rig: Rig, watched: Watched, name: str) -> str:
    """Add a person through the People page's form, by keyboard; returns their id."""
    page = watched.page
    page.goto("/console/people")
    page.get_by_role("textbox", name="External id", exact=True).fill(f"ext-{uuid.uuid4().hex[:8]}")
    page.get_by_role("textbox", name="Name", exact=True).fill(name)
    page.get_by_role("textbox", name="Name", exact=True).press("Enter")
    page.wait_for_url(re.compile(r".*/console/people/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def assert_clean(watched: Watched) -> None:
    assert check_page(watched.page) == []
    assert watched.csp_violations() == []
    assert watched.errors == []
    assert watched.elsewhere == []  # nothing from a CDN: the console works offline


def test_console_signs_in_and_out_by_keyboard(rig: Rig) -> None:
    watched = rig.open(rig.admin)
    page = watched.page
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
    assert_clean(watched)
    page.get_by_role("button", name="Sign out").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/signin")
    page.goto("/console/fleet")
    assert page.url.endswith("/console/signin")
    assert_clean(watched)
    watched.close()


def test_console_enrolls_a_dropped_photo_and_shows_a_refused_ones_reason(
    rig: Rig, samples: dict[str, SamplePhoto]
) -> None:
    watched = rig.open(rig.admin)
    new_person(rig, watched, "Grace Hopper")
    page = watched.page
    drop_files(page, "#enroll", [("hopper.jpg", samples["grace_hopper"].path.read_bytes(), "image/jpeg")])
    expect(page.locator("li.result-accepted")).to_contain_text("hopper.jpg: accepted", timeout=20_000)
    drop_files(page, "#enroll", [("blank.png", faceless_png(), "image/png")])
    refused = page.locator("li.result-rejected")
    expect(refused).to_contain_text("blank.png: refused, no face", timeout=20_000)
    assert refused.get_attribute("data-reason") == "no_face"
    preview = page.locator("#enroll-previews figure.preview[data-filename='blank.png']")  # the photo itself
    expect(preview).to_have_attribute("data-status", "rejected")
    expect(preview.locator("figcaption")).to_contain_text("refused, no face")
    assert_clean(watched)
    watched.close()


def test_console_zip_of_three_people_shows_progress_until_done(
    rig: Rig, samples: dict[str, SamplePhoto]
) -> None:
    watched = rig.open(rig.admin)
    page = watched.page
    archive = build_zip(
        {
            "zip-obama/obama.jpg": samples["obama"].path.read_bytes(),
            "zip-biden/biden.jpg": samples["biden"].path.read_bytes(),
            "zip-collins/astronaut.png": samples["astronaut"].path.read_bytes(),
        }
    )
    page.goto("/console/people")
    page.get_by_label(re.compile("A zip with one folder per person")).set_input_files(
        {"name": "people.zip", "mimeType": "application/zip", "buffer": archive}
    )
    page.get_by_role("button", name="Upload and enroll").click()
    page.wait_for_url(re.compile(r".*/console/jobs/[0-9a-f-]{36}$"))
    expect(page.locator("#job-bar")).to_be_visible()
    expect(page.locator("#job-progress")).to_have_attribute("data-status", "done", timeout=60_000)
    expect(page.locator("#job-progress")).to_contain_text("3 of 3 photos, 3 accepted")
    assert page.locator("#job-bar").get_attribute("value") == "3"
    assert_clean(watched)
    watched.close()


def test_console_live_event_appears_within_two_seconds_of_ingest(rig: Rig) -> None:
    watched = rig.open(rig.admin)
    page = watched.page
    page.goto("/console/events")
    expect(page.locator("#live-state")).to_have_attribute("data-live", "open", timeout=10_000)
    camera = f"cam-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    rig.edge.put(make_event(NORTH, "door", 1, camera=camera))
    expect(page.locator("#event-rows tr").first).to_contain_text(camera, timeout=LIVE_DEADLINE_S * 1000)
    assert time.monotonic() - started < LIVE_DEADLINE_S
    assert_clean(watched)
    watched.close()


def test_console_erases_a_person_confirmed_by_name(rig: Rig) -> None:
    watched = rig.open(rig.admin)
    person = new_person(rig, watched, "Erase Me")
    page = watched.page
    page.get_by_label(re.compile("Type .Erase Me.")).fill("Erase Me")
    page.get_by_label(re.compile("Type .Erase Me.")).press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Erase Me was erased")
    assert page.goto(f"/console/people/{person}").status == 404  # type: ignore[union-attr]
    watched.close()


def test_console_viewer_sees_no_action_and_a_forced_one_is_refused(rig: Rig) -> None:
    watched = rig.open(rig.key("viewer"))
    page = watched.page
    page.goto("/console/people")
    expect(page.get_by_role("heading", name="People")).to_be_visible()
    assert page.get_by_role("button", name="Add").count() == 0
    assert page.get_by_role("link", name="Keys").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    forced = page.request.post(
        f"{rig.base}/console/people",
        form={"external_id": "forced", "csrf": csrf or ""},
        headers={"Origin": rig.base},
    )
    assert forced.status == 403
    assert "insufficient_scope" in forced.text()
    assert_clean(watched)
    watched.close()


def test_console_site_restricted_key_sees_only_its_site(rig: Rig) -> None:
    rig.edge.put(make_event(NORTH, "door", 2, camera="north-only"))
    watched = rig.open(rig.key("viewer", (SOUTH,)))
    page = watched.page
    page.goto("/console/fleet")
    expect(page.locator("#fleet-panel")).to_contain_text("south/gate")
    assert "north/door" not in page.locator("#fleet-panel").inner_text()
    page.goto("/console/events")
    assert "north-only" not in page.locator("main").inner_text()
    assert page.goto("/console/events?site=north").status == 403  # type: ignore[union-attr]
    watched.close()


def test_console_renders_a_hostile_name_as_text(rig: Rig) -> None:
    watched = rig.open(rig.admin)
    new_person(rig, watched, XSS)
    page = watched.page
    expect(page.locator("#person-name")).to_have_text(XSS)
    page.goto("/console/people?q=onerror")
    expect(page.get_by_role("link", name=XSS)).to_be_visible()
    assert watched.dialogs == []
    assert page.locator("main img[src=x]").count() == 0
    watched.close()


def test_console_form_posted_without_its_csrf_token_is_refused(rig: Rig) -> None:
    watched = rig.open(rig.admin)
    page = watched.page
    page.goto("/console/people")
    page.locator("form[action='/console/people'] input[name=csrf]").evaluate("input => input.remove()")
    page.get_by_role("textbox", name="External id", exact=True).fill("no-token")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("CSRF token is missing or stale")
    watched.close()


def test_console_resync_button_sends_the_edge_a_resync_command(rig: Rig) -> None:
    received: queue.Queue[bytes] = queue.Queue()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"console-test-{uuid.uuid4().hex[:8]}")
    listener.on_message = lambda _client, _data, message: received.put(bytes(message.payload))
    listener.connect(rig.broker.host, rig.broker.port)
    listener.subscribe(edge_topic(NORTH, "door", "commands"), qos=1)
    listener.loop_start()
    try:
        watched = rig.open(rig.admin)
        page = watched.page
        with httpx.Client(
            base_url=f"{rig.base}/api/v1", headers={"Authorization": f"Bearer {rig.admin}"}
        ) as api:
            assert (
                api.post("/galleries", json={"id": "front", "name": "Front", "sites": [NORTH]}).status_code
                == 201
            )
        page.goto("/console/galleries/front")
        page.get_by_role("button", name="Resync door").press("Enter")
        page.wait_for_url("**/console/galleries/front?resynced=north/door")
        command = decode(received.get(timeout=10), Command)
        assert command.action == "resync_gallery" and command.gallery == "front"
        watched.close()
    finally:
        listener.loop_stop()
        listener.disconnect()


def test_console_every_page_passes_axe_without_csp_refusals(rig: Rig) -> None:
    watched = rig.open(rig.admin)
    page = watched.page
    person = new_person(rig, watched, "Axe Check")
    with httpx.Client(base_url=f"{rig.base}/api/v1", headers={"Authorization": f"Bearer {rig.admin}"}) as api:
        assert api.post("/galleries", json={"id": "axe", "name": "Axe", "sites": [SOUTH]}).status_code == 201
    rig.edge.put(make_event(NORTH, "door", 3, camera="axe-cam"))
    paths = ["fleet", "events", "people", f"people/{person}", "jobs", "galleries", "galleries/axe", "sites",
             "keys", "audit"]  # fmt: skip
    found = {}
    for path in paths:
        page.goto(f"/console/{path}")
        found[path] = check_page(page)
    deadline = time.monotonic() + 10
    while page.goto("/console/events?camera=axe-cam") and page.locator("#event-rows tr").count() == 0:
        assert time.monotonic() < deadline, "the event did not reach the events page"
        time.sleep(0.2)
    page.locator("#event-rows td:last-child a").first.click()  # an event's own page
    found["event"] = check_page(page)
    page.goto("/console/sites")
    page.get_by_role("textbox", name=f"new edge id in {SOUTH}").fill("axe-edge")
    page.get_by_role("textbox", name=f"new edge id in {SOUTH}").press("Enter")  # the credentials, once
    expect(page.get_by_role("heading", name=f"Credentials of {SOUTH}/axe-edge")).to_be_visible()
    found["credentials"] = check_page(page)
    page.goto("/console/signin")
    found["signin"] = check_page(page)
    assert {path: v for path, v in found.items() if v} == {}
    assert watched.csp_violations() == []
    assert watched.errors == []
    assert watched.elsewhere == []
    watched.close()
