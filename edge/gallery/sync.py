"""The gallery sync client: follows each gallery's manifest and changes topics.

- A delta is applied only onto the version it names (local version + 1), in order.
- A delta from further ahead (a gap) is kept aside and a snapshot is fetched; on start-up, and
  whenever the retained manifest is ahead and no delta bridges the gap, likewise.
- A snapshot is downloaded with the edge's credential, checked against the manifest's sha256,
  checked for the gallery's model, and swapped in whole: matching goes on against the old
  gallery until the new one is complete. A bad snapshot is refused and retried with backoff.
- Malformed messages and deltas for another model are logged, counted and dropped.
Snapshot downloads run on the client's own thread, never on the MQTT network thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from common.errors import FacegateError
from common.messages import GalleryChange, GalleryManifest, MessageError, Snapshot, decode, decode_snapshot
from common.topics import gallery_topic
from edge.gallery.snapshots import SnapshotFetcher

log = logging.getLogger(__name__)


class SyncedGallery(Protocol):
    """What the sync client needs of a gallery cache."""

    @property
    def version(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    def apply_delta(self, change: GalleryChange) -> None: ...

    def replace_with_snapshot(self, snapshot: Snapshot, *, allow_older: bool = False) -> None: ...


Problem = Callable[[str, str], None]  # (gallery, reason) -> None, for metrics
M = TypeVar("M", GalleryChange, GalleryManifest)


class GallerySync:
    """Keeps local galleries at central's versions."""

    def __init__(
        self,
        galleries: dict[str, SyncedGallery],
        fetcher: SnapshotFetcher,
        *,
        on_problem: Problem | None = None,
        on_snapshot: Callable[[str], None] | None = None,
        retry_s: float = 2.0,
        max_retry_s: float = 60.0,
    ) -> None:
        self.galleries = galleries
        self.fetcher = fetcher
        self.manifests: dict[str, GalleryManifest] = {}
        self._ahead: dict[str, dict[int, GalleryChange]] = {g: {} for g in galleries}
        self._swapping: set[str] = set()  # galleries whose snapshot is being swapped in
        # galleries whose latest message is a manifest behind the local version: central went back
        # (restored from a backup), so its older snapshot is the truth
        self._go_back: set[str] = set()
        self._lock = threading.RLock()
        self._wanted: queue.Queue[str | None] = queue.Queue()
        self._on_problem = on_problem or (lambda gallery, reason: None)
        self._on_snapshot = on_snapshot or (lambda gallery: None)
        self._retry_s, self._max_retry_s = retry_s, max_retry_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gallery-sync", daemon=True)

    def subscriptions(self) -> list[tuple[str, Callable[[bytes], None]]]:
        """(topic, handler) pairs to subscribe at QoS 1."""
        subs: list[tuple[str, Callable[[bytes], None]]] = []
        for gallery in self.galleries:
            subs.append((gallery_topic(gallery, "manifest"), self.on_manifest))
            subs.append((gallery_topic(gallery, "changes"), self.on_change))
        return subs

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.put(None)
        self._thread.join(timeout=10)

    def resync(self, gallery: str) -> None:
        """Fetch the snapshot the latest manifest names (the resync command, and gaps)."""
        if gallery in self.galleries:
            self._wanted.put(gallery)

    def on_manifest(self, payload: bytes) -> None:
        manifest = self._decode(payload, GalleryManifest, "manifest")
        if manifest is None or not self._known(manifest.gallery, manifest.model, "manifest"):
            return
        with self._lock:
            self.manifests[manifest.gallery] = manifest
            local = self.galleries[manifest.gallery].version
            if manifest.version < local:
                self._go_back.add(manifest.gallery)
            ahead = self._ahead[manifest.gallery]
            # Bridged only when the kept deltas hold every version after the local one up to the
            # manifest's (deltas are published before their manifest): a client that subscribed
            # mid-burst may hold later deltas without the first ones, and must fetch the snapshot.
            bridged = manifest.version > local and all(
                v in ahead for v in range(local + 1, manifest.version + 1)
            )
            if manifest.version != local and not bridged:
                log.info(
                    "gallery_behind",
                    extra={"gallery": manifest.gallery, "local": local, "central": manifest.version},
                )
                self.resync(manifest.gallery)

    def on_change(self, payload: bytes) -> None:
        change = self._decode(payload, GalleryChange, "changes")
        if change is None or not self._known(change.gallery, change.model, "changes"):
            return
        with self._lock:
            gallery = self.galleries[change.gallery]
            if change.version <= gallery.version:
                log.info("gallery_delta_stale", extra={"gallery": change.gallery, "version": change.version})
                return
            self._ahead[change.gallery][change.version] = change
            self._go_back.discard(change.gallery)  # a newer delta: central moves forward again
            if change.gallery in self._swapping:
                return  # applied after the swap, in order
            if change.version > gallery.version + 1:
                log.warning(
                    "gallery_gap",
                    extra={"gallery": change.gallery, "local": gallery.version, "delta": change.version},
                )
                self.resync(change.gallery)
                return
            self._drain(change.gallery)

    def _drain(self, name: str) -> None:
        """Apply kept deltas that follow the local version, in order."""
        gallery, ahead = self.galleries[name], self._ahead[name]
        for version in sorted(v for v in ahead if v <= gallery.version):
            del ahead[version]
        while gallery.version + 1 in ahead:
            change = ahead.pop(gallery.version + 1)
            try:
                gallery.apply_delta(change)
            except FacegateError as err:
                log.error(
                    "gallery_delta_refused",
                    extra={"gallery": name, "version": change.version, "error": str(err)},
                )
                self._on_problem(name, "delta_refused")
                return
            log.info("gallery_delta_applied", extra={"gallery": name, "version": change.version})

    def _known(self, gallery: str, model: str, kind: str) -> bool:
        if gallery not in self.galleries:
            log.warning("gallery_not_followed", extra={"gallery": gallery, "topic_kind": kind})
            self._on_problem(gallery, "not_followed")
            return False
        if model != self.galleries[gallery].model_id:
            log.error(
                "gallery_wrong_model",
                extra={"gallery": gallery, "model": model, "expected": self.galleries[gallery].model_id},
            )
            self._on_problem(gallery, "wrong_model")
            return False
        return True

    def _decode(self, payload: bytes, kind: type[M], topic: str) -> M | None:
        try:
            return decode(payload, kind)
        except MessageError as err:
            log.warning("gallery_message_malformed", extra={"topic_kind": topic, "error": str(err)[:200]})
            self._on_problem("?", f"malformed_{topic}")
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            gallery = self._wanted.get()
            if gallery is None:
                return
            delay = self._retry_s
            while not self._stop.is_set() and not self._resync_once(gallery):
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_retry_s)

    def _resync_once(self, name: str) -> bool:
        """Download and swap in the manifest's snapshot; True when done or nothing to do."""
        with self._lock:
            manifest = self.manifests.get(name)
            gallery = self.galleries[name]
            behind = manifest is not None and manifest.version < gallery.version and name not in self._go_back
            if manifest is None or manifest.version == gallery.version or behind:
                return True  # up to date, or a gap since closed by deltas newer than the manifest
            self._swapping.add(name)
        try:
            return self._swap_in(name, manifest)
        finally:
            with self._lock:
                self._swapping.discard(name)
                self._drain(name)

    def _swap_in(self, name: str, manifest: GalleryManifest) -> bool:
        gallery = self.galleries[name]
        try:
            data = self.fetcher.fetch(
                name, manifest.snapshot_version or manifest.version, manifest.snapshot_sha256
            )
            snapshot = decode_snapshot(data)
            if snapshot.gallery != name or snapshot.model != gallery.model_id:
                raise MessageError(
                    f"snapshot is {snapshot.gallery}/{snapshot.model}, wanted {name}/{gallery.model_id}"
                )
        except (FacegateError, MessageError) as err:
            log.error("gallery_snapshot_refused", extra={"gallery": name, "error": str(err)})
            self._on_problem(name, "snapshot_refused")
            return False
        started = time.monotonic()
        # matching goes on against the old gallery meanwhile; central's manifest is the truth, so a
        # snapshot older than the local version (central restored from a backup) is taken too
        gallery.replace_with_snapshot(snapshot, allow_older=True)
        with self._lock:
            self._go_back.discard(name)
        log.info(
            "gallery_snapshot_applied",
            extra={
                "gallery": name,
                "version": snapshot.version,
                "templates": len(snapshot.templates),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        self._on_snapshot(name)
        return True
