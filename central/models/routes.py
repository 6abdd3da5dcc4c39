"""HTTP routes of this package (mounted under /api/v1 by central/app.py): model manifests for viewer keys
and edges, model artifacts for edges (and admin keys), streamed through central with their sha256."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from central.models.repository import ARTIFACT_CONTENT_TYPE, artifact_file
from central.models.schemas import ModelRead
from central.models.service import ModelService
from central.principal import Scope

SHA256_HEADER = "X-Facegate-Sha256"
_MANIFEST_READERS = {"scope": Scope.EDGE, "key_scope": Scope.VIEWER}


@get("/models", opt=_MANIFEST_READERS, tags=["models"], sync_to_thread=False)
def list_models(models: NamedDependency[ModelService]) -> list[ModelRead]:
    """Every model central knows: the defaults, and the detector/recognizer it runs."""
    return models.list_models()


@get("/models/{model_id:str}", opt=_MANIFEST_READERS, tags=["models"], sync_to_thread=False)
def get_model(model_id: FromPath[str], models: NamedDependency[ModelService]) -> ModelRead:
    return models.get(model_id)


@get("/models/{model_id:str}/artifact", opt={"scope": Scope.EDGE}, tags=["models"])
async def get_artifact(model_id: FromPath[str], models: NamedDependency[ModelService]) -> Response[bytes]:
    """The model file, from object storage (uploaded there on first use after a sha256 check). The
    `X-Facegate-Sha256` header is the manifest's sha256: verify the bytes against it before use."""
    manifest, data = await models.artifact(model_id)
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
