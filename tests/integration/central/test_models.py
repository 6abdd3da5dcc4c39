"""Model manifests and artifacts: edges download the files central verified, with their sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from central.errors import Unavailable
from central.models.repository import artifact_key, ensure_artifact
from central.runtime import open_object_store
from central.storage import FileSettings, FileStore
from common.models.manifest import SFACE, YUNET
from tests.support.central_app import SECRET, Central


def edge_credential(central: Central) -> str:
    central.client.post("/api/v1/sites", json={"id": "a"}, headers=central.admin)
    response = central.client.post("/api/v1/sites/a/edges", json={"id": "e1"}, headers=central.admin)
    assert response.status_code == 201, response.text
    return str(response.json()["credentials"]["api_key"])


def test_models_list_gives_the_default_manifests(central: Central) -> None:
    response = central.client.get("/api/v1/models", headers=central.as_(central.key("viewer")))
    assert response.status_code == 200, response.text
    models = {m["id"]: m for m in response.json()}
    assert set(models) == {YUNET.id, SFACE.id}
    sface = models[SFACE.id]
    assert (sface["kind"], sface["family"], sface["embedding_size"]) == ("recognizer", "sface", 128)
    assert (sface["sha256"], sface["size_bytes"], sface["license"]) == (
        SFACE.sha256,
        SFACE.size_bytes,
        "Apache-2.0",
    )
    assert sface["artifact"] == f"/api/v1/models/{SFACE.id}/artifact"


def test_models_edge_can_read_manifests(central: Central) -> None:
    edge = central.as_(edge_credential(central))
    response = central.client.get(f"/api/v1/models/{YUNET.id}", headers=edge)
    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == YUNET.sha256


def test_models_edge_downloads_an_artifact_matching_its_manifest(central: Central) -> None:
    edge = central.as_(edge_credential(central))
    response = central.client.get(f"/api/v1/models/{YUNET.id}/artifact", headers=edge)
    assert response.status_code == 200, response.text
    assert response.headers["x-facegate-sha256"] == YUNET.sha256
    assert hashlib.sha256(response.content).hexdigest() == YUNET.sha256
    assert open_object_store(central.settings).stat(artifact_key(YUNET)).sha256 == YUNET.sha256


def test_models_artifact_is_for_edges_and_admins_only(central: Central) -> None:
    operator = central.as_(central.key("operator"))
    refused = central.client.get(f"/api/v1/models/{YUNET.id}/artifact", headers=operator)
    assert refused.status_code == 403
    assert refused.json()["code"] == "edge_endpoint"
    admin = central.client.get(f"/api/v1/models/{YUNET.id}/artifact", headers=central.admin)
    assert admin.status_code == 200


def test_models_a_wrong_stored_artifact_is_replaced(central: Central) -> None:
    store = open_object_store(central.settings)
    store.put(artifact_key(YUNET), b"not the model")
    response = central.client.get(f"/api/v1/models/{YUNET.id}/artifact", headers=central.admin)
    assert hashlib.sha256(response.content).hexdigest() == YUNET.sha256


def test_models_unknown_id_is_404(central: Central) -> None:
    response = central.client.get("/api/v1/models/nope/artifact", headers=central.admin)
    assert response.status_code == 404


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    store = FileStore(FileSettings(root=tmp_path / "objects", secret_key=SECRET))
    store.ensure_buckets()
    return store


def test_models_ensure_artifact_refuses_a_file_that_does_not_match(
    file_store: FileStore, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / YUNET.file).write_bytes(b"x" * YUNET.size_bytes)
    with pytest.raises(Unavailable, match="sha256"):
        ensure_artifact(file_store, YUNET, models)
    assert not file_store.exists(artifact_key(YUNET))


def test_models_ensure_artifact_reports_a_missing_file(file_store: FileStore, tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="facegate models fetch"):
        ensure_artifact(file_store, YUNET, tmp_path / "empty")


def test_models_ensure_artifact_uploads_once(file_store: FileStore, model_dir: Path) -> None:
    first = ensure_artifact(file_store, YUNET, model_dir)
    assert first.sha256 == YUNET.sha256
    assert ensure_artifact(file_store, YUNET, Path("/nonexistent")) == first  # served from the store
