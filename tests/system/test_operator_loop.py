"""Negative feedback changes what an edge says, end to end (docs/operator-loop.md): central under uvicorn,
Mosquitto over TLS, and two edge daemons (sites north and south) on a looping video of real photos
(obama3.jpg, then biden.jpg). Person A (Obama) is enrolled from obama2.jpg; B (Biden) never is.

No pair of our photos is a look-alike for SFace (Biden's video frames score 0.12-0.27 against A's
template), so the edges' threshold is lowered to 0.05: B is matched as A at both sites. Then:
1. an operator marks a north event of B "not A" (POST /events/{id}/corrections): the face becomes a
   negative example of A, which reaches the south edge in a gallery delta (gallery-change/1.1);
2. B's next visit at south is unknown, while A (obama3.jpg's angle) is still recognised there;
3. south's threshold is raised to 0.7 (device file, SIGHUP), where A's obama3 angle (0.62-0.65 against
   the obama2 template) is unknown; the operator marks such an unknown event "this is A" with
   `add_template`: the crop is enrolled through the photo gate, and A is recognised from that angle.
Which face an event shows is told from its embedding (event_embeddings), against the photos' own."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from numpy.typing import NDArray

from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from devtools.services.endpoints import S3Service
from tests.support.faces import read
from tests.support.system_processes import GALLERY, EdgeProcess, wait_until
from tests.support.system_rig import System, private_backends, running_system
from tests.support.videos import compose_visit_video

NORTH, SOUTH = "north/door", "south/gate"
LOW = {"thresholds": {"match": 0.05, "margin": 0.05, "negative_margin": 0.05}}
SAME_FACE = 0.5  # an event's embedding at least this close to a photo's shows that photo's person


@pytest.fixture(scope="module")
def references(pipeline: FacePipeline, samples: dict[str, SamplePhoto]) -> dict[str, NDArray[np.float32]]:
    out = {}
    for name in ("obama3", "biden"):
        (face,) = [f for f in pipeline.process(read(samples[name].path)) if f.embedding is not None]
        assert face.embedding is not None
        out[name] = face.embedding / np.linalg.norm(face.embedding)
    return out


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory,
    service_backend: str,
    s3_server: S3Service,
    model_dir: Path,
    samples: dict[str, SamplePhoto],
) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("system-loop")
    photos = [samples["obama3"].path, samples["biden"].path]
    video = compose_visit_video(
        tmp / "visits.mp4", photos, seconds_each=1.2, fps=8.0, size=(640, 360), gap_s=0.6
    )
    device = {NORTH: LOW, SOUTH: LOW}
    sites = {"north": ["door"], "south": ["gate"]}
    docker = service_backend == "docker"
    with (
        private_backends(tmp / "pg", s3_server, docker=docker) as (pg, bucket),
        running_system(
            tmp, pg.endpoint.dsn, s3_server, bucket, model_dir, sites, video, device=device
        ) as running,
    ):
        yield running


def sightings(system: System, site: str, face: NDArray[np.float32], since: datetime) -> list[tuple[Any, ...]]:
    """(event id, person id, ts) of the site's events showing `face`, first seen after `since`."""
    rows = system.rows(
        "SELECT e.id::text, e.person_id::text, e.ts, x.embedding FROM events e"
        " JOIN event_embeddings x ON x.event_id = e.id"
        " WHERE e.site_id = %s AND e.first_seen > %s ORDER BY e.ts",
        site,
        since,
    )
    return [row[:3] for row in rows if float(np.asarray(row[3]) @ face) >= SAME_FACE]


def seen_as(
    system: System, site: str, face: NDArray[np.float32], since: datetime, person: str | None
) -> bool:
    return any(row[1] == person for row in sightings(system, site, face, since))


def negatives(edge: EdgeProcess) -> int:
    return len(
        edge._query(edge.folder / "state" / f"gallery.{GALLERY}.db", "SELECT negative_id FROM negatives")
    )


def templates(edge: EdgeProcess) -> int:
    return len(
        edge._query(edge.folder / "state" / f"gallery.{GALLERY}.db", "SELECT template_id FROM templates")
    )


def correct(system: System, event_id: str, **body: Any) -> dict[str, Any]:
    return system.post(f"/events/{event_id}/corrections", body)


def test_system_not_a_teaches_edges_and_a_new_angle_becomes_a_template(
    system: System, samples: dict[str, SamplePhoto], references: dict[str, NDArray[np.float32]]
) -> None:
    started = datetime.now(UTC)
    a = system.enroll("obama", samples["obama2"].path)
    south = system.edges[SOUTH]
    obama, biden = references["obama3"], references["biden"]
    # B is matched as A (threshold 0.05)
    wait_until(lambda: seen_as(system, "north", biden, started, a), 30, "B recognised as A at north")
    wrong = next(row[0] for row in sightings(system, "north", biden, started) if row[1] == a)
    said = correct(system, wrong, action="not_person", note="that is B")
    assert said["negative_id"] is not None
    wait_until(lambda: negatives(south) == 1, 15, "the negative in south's gallery", every=0.05)
    taught = datetime.now(UTC)
    # B's next visit at south: unknown; A still recognised there
    wait_until(lambda: seen_as(system, "south", biden, taught, None), 20, "B unknown at south")
    wait_until(lambda: seen_as(system, "south", obama, taught, a), 20, "A still recognised at south")
    assert not seen_as(system, "south", biden, taught, a)
    # A's obama3 angle is unknown at a strict south; marking it as A enrolls the crop
    document = yaml.safe_load(south.config.read_text())
    document["thresholds"]["match"] = 0.7
    south.config.write_text(yaml.safe_dump(document))
    assert south.proc is not None
    south.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)  # the reload thread re-reads the file
    strict = datetime.now(UTC)
    wait_until(
        lambda: seen_as(system, "south", obama, strict, None), 20, "A's angle unknown at a strict south"
    )
    unknown = next(row[0] for row in sightings(system, "south", obama, strict) if row[1] is None)
    added = correct(system, unknown, action="is_person", person_id=a, add_template=True)
    assert added["template_status"] == "accepted", added
    wait_until(lambda: templates(south) == 2, 15, "the new template in south's gallery", every=0.05)
    learned = datetime.now(UTC)
    wait_until(lambda: seen_as(system, "south", obama, learned, a), 20, "A recognised from the new angle")
