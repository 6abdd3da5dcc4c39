"""Model artifacts in object storage (`models/{id}/{file}`): models keep no rows, their store is this.

An artifact is uploaded lazily, on its first download: from the models directory (FACEGATE_MODELS) for
the defaults, from its own path for a user model, only after its sha256 matches the manifest. A stored
object whose recorded sha256 differs is replaced the same way.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from central.errors import Unavailable
from central.storage import ObjectNotFound, ObjectStore, StoredObject, model_key
from common.models.manifest import ModelManifest
from common.pipeline.pipeline import model_path

ARTIFACT_CONTENT_TYPE = "application/octet-stream"
_UPLOAD_LOCK = threading.Lock()
"""One upload at a time per process: concurrent first downloads then find the object stored."""


def artifact_file(manifest: ModelManifest) -> str:
    """The artifact's file name (a user model's manifest holds a full path)."""
    return Path(manifest.file).name


def artifact_key(manifest: ModelManifest) -> str:
    return model_key(manifest.id, artifact_file(manifest))


def ensure_artifact(store: ObjectStore, manifest: ModelManifest, models_dir: Path) -> StoredObject:
    """The artifact's stored object, uploaded first when missing or not the manifest's bytes.
    Unavailable (503) when the local file is missing or does not match the manifest. Blocking."""
    key = artifact_key(manifest)
    with _UPLOAD_LOCK:
        try:
            stored = store.stat(key)
            if stored.sha256 == manifest.sha256 and stored.size == manifest.size_bytes:
                return stored
        except ObjectNotFound:
            pass
        return store.put(key, _verified_bytes(manifest, models_dir), ARTIFACT_CONTENT_TYPE)


def _verified_bytes(manifest: ModelManifest, models_dir: Path) -> bytes:
    path = model_path(manifest, models_dir)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise Unavailable(
            f"model {manifest.id} is not in object storage and {path} cannot be read ({err.strerror}); "
            "run `facegate models fetch` on a central replica",
            code="model_unavailable",
        ) from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.sha256:
        raise Unavailable(
            f"model file {path} has sha256 {digest}, its manifest says {manifest.sha256}: refusing to "
            "publish it; run `facegate models fetch` to restore it",
            code="model_unavailable",
        )
    return data


def read_artifact(store: ObjectStore, manifest: ModelManifest) -> bytes:
    """The stored artifact's bytes (after `ensure_artifact`). Blocking."""
    return store.get(artifact_key(manifest))
