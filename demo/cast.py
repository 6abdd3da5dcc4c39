"""Who the demo enrolls and what its two cameras see, from the real photos of pinned registry packages
(demo/sample_faces.py, verified by sha256).

Enrolled through central's API: Barack Obama (from `obama.jpg` only), Joe Biden and Grace Hopper.
Each site's camera shows every enrolled person, Obama from two *other* photos (`obama2.jpg` at one
site, `obama3.jpg` at the other), and Eileen Collins, who is never enrolled and must come out unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from demo.sample_faces import SamplePhoto, fetch_samples
from demo.videos import compose_visit_video

GALLERY = "staff"


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    edge: str
    camera: str
    visitors: tuple[str, ...]  # sample photo names, in the order the camera sees them


@dataclass(frozen=True, slots=True)
class Person:
    external_id: str
    name: str
    photo: str  # the sample photo enrolled


ENROLLED = (
    Person("obama", "Barack Obama", "obama"),
    Person("biden", "Joe Biden", "biden"),
    Person("hopper", "Grace Hopper", "grace_hopper"),
)
NOT_ENROLLED = "Eileen Collins"
SITES = (
    Site("hq", "Headquarters", "hq-gw1", "lobby", ("obama2", "biden", "astronaut", "grace_hopper")),
    Site("north", "North branch", "north-gw1", "entrance", ("grace_hopper", "astronaut", "obama3", "biden")),
)
SECONDS_EACH = 2.0
GAP_S = 1.0
FPS = 10.0


def photos(folder: Path) -> dict[str, SamplePhoto]:
    return fetch_samples(folder)


def site_video(site: Site, samples: dict[str, SamplePhoto], folder: Path) -> Path:
    """The site camera's looping clip (made once; kept in the state folder)."""
    path = folder / f"{site.id}-{site.camera}.avi"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part.avi")
        compose_visit_video(
            partial,
            [samples[name].path for name in site.visitors],
            SECONDS_EACH,
            FPS,
            (960, 540),
            gap_s=GAP_S,
        )
        partial.replace(path)
    return path
