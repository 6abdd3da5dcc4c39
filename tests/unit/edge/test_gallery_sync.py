"""Gallery sync: deltas in order, gaps and start-up fetch a snapshot (served by a plain HTTP server),
bad snapshots and other models are refused while the old gallery keeps serving."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from common.messages import (
    GalleryChange,
    GalleryManifest,
    Snapshot,
    SnapshotTemplate,
    Template,
    embedding_bytes,
    encode,
    encode_snapshot,
)
from edge.gallery.cache import Gallery
from edge.gallery.snapshots import SnapshotFetcher
from edge.gallery.sync import GallerySync

MODEL = "sface-2021dec"
RNG = np.random.default_rng(7)


def vec() -> np.ndarray:
    v = RNG.normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


class SnapshotServer:
    """Serves /api/v1/galleries/{id}/snapshot?version=N from a dict; records requests and tokens."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, int], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Authorization", "")))
                parts = self.path.split("/")
                gallery, version = parts[4], int(self.path.rsplit("=", 1)[1])
                body = outer.files.get((gallery, version))
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture
def server() -> Iterator[SnapshotServer]:
    s = SnapshotServer()
    yield s
    s.http.shutdown()


def snapshot(version: int, people: dict[str, np.ndarray], model: str = MODEL) -> Snapshot:
    return Snapshot(
        gallery="staff",
        version=version,
        model=model,
        embedding_size=128,
        templates=[
            SnapshotTemplate(person_id=p, template_id=f"t-{p}", embedding=embedding_bytes(v))
            for p, v in people.items()
        ],
    )


def manifest(version: int, data: bytes, snapshot_version: int | None = None) -> bytes:
    return encode(
        GalleryManifest(
            gallery="staff",
            version=version,
            model=MODEL,
            snapshot_version=snapshot_version or version,
            snapshot_sha256=hashlib.sha256(data).hexdigest(),
        )
    )


def change(version: int, person: str, vector: np.ndarray, model: str = MODEL) -> bytes:
    return encode(
        GalleryChange(
            gallery="staff",
            version=version,
            model=model,
            upserts=[
                Template(
                    person_id=person,
                    template_id=f"t-{person}",
                    model=model,
                    embedding=embedding_bytes(vector),
                )
            ],
        )
    )


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Gallery]:
    g = Gallery.open(tmp_path / "gallery.staff.db", "staff", MODEL, dim=128)
    yield g
    g.close()


def make_sync(gallery: Gallery, server: SnapshotServer, problems: list[str]) -> GallerySync:
    sync = GallerySync(
        {"staff": gallery},
        SnapshotFetcher(server.url, "edge-token"),
        retry_s=0.05,
        on_problem=lambda g, reason: problems.append(reason),
    )
    sync.start()
    return sync


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_sync_startup_behind_manifest_fetches_snapshot_with_credential(
    gallery: Gallery, server: SnapshotServer
) -> None:
    data = encode_snapshot(snapshot(3, {"alice": vec(), "bob": vec()}))
    server.files[("staff", 3)] = data
    sync = make_sync(gallery, server, [])
    sync.on_manifest(manifest(3, data))
    wait_for(lambda: gallery.version == 3)
    assert gallery.template_count == 2
    assert server.requests == [("/api/v1/galleries/staff/snapshot?version=3", "Bearer edge-token")]
    sync.stop()


def test_sync_deltas_applied_in_order_then_gap_triggers_snapshot(
    gallery: Gallery, server: SnapshotServer
) -> None:
    problems: list[str] = []
    sync = make_sync(gallery, server, problems)
    alice, bob, carol = vec(), vec(), vec()
    sync.on_change(change(1, "alice", alice))
    sync.on_change(change(2, "bob", bob))
    assert gallery.version == 2 and not server.requests
    data = encode_snapshot(snapshot(5, {"alice": alice, "bob": bob, "carol": carol}))
    server.files[("staff", 5)] = data
    sync.on_manifest(manifest(5, data))
    sync.on_change(change(6, "dave", vec()))  # a gap: 3..5 never came
    wait_for(lambda: gallery.version == 6)
    assert gallery.template_count == 4 and len(server.requests) == 1
    assert problems == []
    sync.stop()


def test_sync_joined_mid_burst_fetches_the_snapshot(gallery: Gallery, server: SnapshotServer) -> None:
    alice, bob, carol = vec(), vec(), vec()
    sync = make_sync(gallery, server, [])
    sync.on_change(change(2, "bob", bob))  # subscribed after delta 1 went out; no manifest known yet
    sync.on_change(change(3, "carol", carol))
    data = encode_snapshot(snapshot(3, {"alice": alice, "bob": bob, "carol": carol}))
    server.files[("staff", 3)] = data
    sync.on_manifest(manifest(3, data))  # deltas 2 and 3 are kept, but 1 never came
    wait_for(lambda: gallery.version == 3)
    assert gallery.template_count == 3
    sync.stop()


def test_sync_bad_sha256_refused_old_gallery_keeps_serving(gallery: Gallery, server: SnapshotServer) -> None:
    problems: list[str] = []
    sync = make_sync(gallery, server, problems)
    alice = vec()
    sync.on_change(change(1, "alice", alice))
    good = encode_snapshot(snapshot(4, {"mallory": vec()}))
    server.files[("staff", 4)] = good[:-1] + bytes([good[-1] ^ 1])  # altered in transit
    sync.on_manifest(manifest(4, good))
    wait_for(lambda: problems.count("snapshot_refused") >= 2)  # refused, and retried with backoff
    assert gallery.version == 1
    hits = gallery.search(alice.reshape(1, -1), 1)[0]
    assert hits[0].person_id == "alice"
    sync.stop()


def test_sync_other_model_delta_and_snapshot_refused(gallery: Gallery, server: SnapshotServer) -> None:
    problems: list[str] = []
    sync = make_sync(gallery, server, problems)
    sync.on_change(change(1, "alice", vec(), model="arcface-0123456789ab"))
    assert gallery.version == 0 and problems == ["wrong_model"]
    other = encode_snapshot(snapshot(2, {"x": vec()}, model="arcface-0123456789ab"))
    server.files[("staff", 2)] = other
    sync.on_manifest(manifest(2, other))
    wait_for(lambda: "snapshot_refused" in problems)
    assert gallery.version == 0
    sync.stop()


def test_sync_malformed_messages_counted_never_raise(gallery: Gallery, server: SnapshotServer) -> None:
    problems: list[str] = []
    sync = make_sync(gallery, server, problems)
    for payload in (b"", b"{", b'{"schema":"facegate.gallery-change/1"}', b"\xff" * 10):
        sync.on_change(payload)
        sync.on_manifest(payload)
    assert problems.count("malformed_changes") == 4 and problems.count("malformed_manifest") == 4
    assert gallery.version == 0
    sync.stop()


def test_sync_manifest_behind_local_takes_centrals_older_snapshot(
    gallery: Gallery, server: SnapshotServer
) -> None:
    sync = make_sync(gallery, server, [])
    for version, person in enumerate(("alice", "bob", "carol"), start=1):
        sync.on_change(change(version, person, vec()))
    assert gallery.version == 3
    restored = encode_snapshot(snapshot(1, {"alice": vec()}))  # central restored from a backup
    server.files[("staff", 1)] = restored
    sync.on_manifest(manifest(1, restored))
    wait_for(lambda: gallery.version == 1)
    assert gallery.template_count == 1
    sync.stop()
