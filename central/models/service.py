"""The models service: the manifests central knows and their artifacts for edges.

Central knows the default models (YuNet, SFace) and the detector/recognizer it runs itself (which may
be a user-supplied SCRFD/ArcFace file); artifacts are served from object storage
(central/models/repository.py), uploaded there on first use after a sha256 check.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread

from central.errors import NotFound
from central.models.repository import artifact_file, ensure_artifact, read_artifact
from central.models.schemas import ModelRead
from central.storage import ObjectStore
from common.models.manifest import DEFAULT_MODELS, ModelManifest


class ModelService:
    """`loaded`: the manifests of the models central runs (detector, then recognizer if any);
    `models_dir`: FACEGATE_MODELS, where the default models' files are."""

    def __init__(self, store: ObjectStore, loaded: list[ModelManifest], *, models_dir: Path) -> None:
        self.store = store
        self.manifests = known_manifests(loaded)
        self.models_dir = models_dir

    def list_models(self) -> list[ModelRead]:
        return [model_read(m) for m in self.manifests]

    def get(self, model_id: str) -> ModelRead:
        return model_read(self.find(model_id))

    def find(self, model_id: str) -> ModelManifest:
        for manifest in self.manifests:
            if manifest.id == model_id:
                return manifest
        raise NotFound(f"no model {model_id!r}; GET /api/v1/models lists the known ones")

    async def artifact(self, model_id: str) -> tuple[ModelManifest, bytes]:
        """The model's manifest and file (uploaded to object storage first if need be)."""
        manifest = self.find(model_id)
        await anyio.to_thread.run_sync(ensure_artifact, self.store, manifest, self.models_dir)
        return manifest, await anyio.to_thread.run_sync(read_artifact, self.store, manifest)


def known_manifests(loaded: list[ModelManifest]) -> list[ModelManifest]:
    """The default models, then the loaded models that are not defaults."""
    manifests = list(DEFAULT_MODELS)
    manifests.extend(m for m in loaded if m.id not in {d.id for d in DEFAULT_MODELS})
    return manifests


def model_read(manifest: ModelManifest) -> ModelRead:
    default = manifest in DEFAULT_MODELS
    return ModelRead(
        id=manifest.id,
        kind=manifest.kind,
        family=manifest.family,
        file=artifact_file(manifest),
        sha256=manifest.sha256,
        size_bytes=manifest.size_bytes,
        input_size=manifest.input_size,
        layout=manifest.layout,
        color_order=manifest.color_order,
        mean=manifest.mean,
        std=manifest.std,
        embedding_size=manifest.embedding_size,
        license=manifest.license,
        source=manifest.source if default else "user-supplied",  # never a path on central's disk
        artifact=f"/api/v1/models/{manifest.id}/artifact",
    )
