"""Building a real edge device for daemon tests: a gallery snapshot from real photos, a device file."""

from __future__ import annotations

from pathlib import Path

import yaml

from common.messages import Snapshot, SnapshotTemplate, embedding_bytes
from common.pipeline.pipeline import FacePipeline
from edge.gallery.cache import Gallery
from tests.support.labelled import largest_embedding


def enroll(pipeline: FacePipeline, db: Path, people: dict[str, Path], gallery: str = "staff") -> Snapshot:
    """Write a gallery database holding one template per person, embedded from the given photo."""
    assert pipeline.embedder is not None
    model = pipeline.embedder.model_id
    templates = [
        SnapshotTemplate(
            person_id=person,
            template_id=f"{person}-1",
            embedding=embedding_bytes(largest_embedding(pipeline, photo, 640)),
        )
        for person, photo in people.items()
    ]
    snapshot = Snapshot(gallery=gallery, version=1, model=model, embedding_size=128, templates=templates)
    db.parent.mkdir(parents=True, exist_ok=True)
    with Gallery.open(db, gallery, model, dim=128) as cache:
        cache.replace_with_snapshot(snapshot)
    return snapshot


def device_file(
    path: Path,
    *,
    broker_port: int,
    cameras: list[dict[str, object]],
    state: Path,
    model_dir: Path,
    health_port: int,
    **overrides: object,
) -> Path:
    """A device file for site s1, edge e1 with the given cameras, following gallery `staff`."""
    document: dict[str, object] = {
        "site": "s1",
        "edge": "e1",
        "broker": {"url": f"mqtt://127.0.0.1:{broker_port}", "keepalive": 5},
        "central": {"url": "http://127.0.0.1:9", "key_id": "e1", "secret": "test-secret"},
        "cameras": cameras,
        "gallery": {"ids": ["staff"], "db_path": str(state / "gallery.db")},
        "outbox": {"path": str(state / "outbox.db"), "resend_after_s": 3.0},
        "tracker": {"timeout_s": 1.5},
        "heartbeat_s": 1.0,
        "health": {"host": "127.0.0.1", "port": health_port},
        "pipeline": {"models_dir": str(model_dir)},
        "log_level": "info",
    }
    document.update(overrides)
    path.write_text(yaml.safe_dump(document))
    return path
