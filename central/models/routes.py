"""HTTP routes of this package (mounted under /api/v1 by central/app.py): model manifests for viewer keys
and edges, model artifacts for edges (and admin keys), streamed through central with their sha256."""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from central.auth.scopes import Scope
from central.errors import NotFound
from central.models.artifacts import (
    ARTIFACT_CONTENT_TYPE,
    artifact_file,
    artifact_key,
    ensure_artifact,
    known_manifests,
)
from central.runtime import Runtime
from common.models.manifest import DEFAULT_MODELS, ModelManifest

SHA256_HEADER = "X-Facegate-Sha256"
_MANIFEST_READERS = {"scope": Scope.EDGE, "key_scope": Scope.VIEWER}


class ModelRead(msgspec.Struct, frozen=True, kw_only=True):
    """A model's manifest: what it is, its file and how to feed it (see MODELS.md)."""

    id: str
    kind: str
    family: str
    file: str
    sha256: str
    size_bytes: int
    input_size: tuple[int, int]
    layout: str
    color_order: str
    mean: float
    std: float
    embedding_size: int
    license: str
    source: str
    artifact: str
    """Path of GET .../artifact, which returns the file (edge credentials and admin keys)."""


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


def find_manifest(runtime: Runtime, model_id: str) -> ModelManifest:
    for manifest in known_manifests(runtime.pipeline):
        if manifest.id == model_id:
            return manifest
    raise NotFound(f"no model {model_id!r}; GET /api/v1/models lists the known ones")


@get("/models", opt=_MANIFEST_READERS, tags=["models"], sync_to_thread=False)
def list_models(runtime: NamedDependency[Runtime]) -> list[ModelRead]:
    """Every model central knows: the defaults, and the detector/recognizer it runs."""
    return [model_read(m) for m in known_manifests(runtime.pipeline)]


@get("/models/{model_id:str}", opt=_MANIFEST_READERS, tags=["models"], sync_to_thread=False)
def get_model(model_id: FromPath[str], runtime: NamedDependency[Runtime]) -> ModelRead:
    return model_read(find_manifest(runtime, model_id))


@get("/models/{model_id:str}/artifact", opt={"scope": Scope.EDGE}, tags=["models"])
async def get_artifact(model_id: FromPath[str], runtime: NamedDependency[Runtime]) -> Response[bytes]:
    """The model file, from object storage (uploaded there on first use after a sha256 check). The
    `X-Facegate-Sha256` header is the manifest's sha256: verify the bytes against it before use."""
    manifest = find_manifest(runtime, model_id)
    await anyio.to_thread.run_sync(ensure_artifact, runtime.store, manifest, runtime.settings.models_dir)
    data = await anyio.to_thread.run_sync(runtime.store.get, artifact_key(manifest))
    return Response(
        data,
        media_type=ARTIFACT_CONTENT_TYPE,
        headers={
            SHA256_HEADER: manifest.sha256,
            "Content-Disposition": f'attachment; filename="{artifact_file(manifest)}"',
            "Cache-Control": "private, max-age=3600",
        },
    )


ROUTES: list[ControllerRouterHandler] = [list_models, get_model, get_artifact]
