"""Enrollment test photos built from the pinned sample faces, and small helpers over the `central` app."""

from __future__ import annotations

from typing import Any

import cv2
import httpx
import numpy as np
from numpy.typing import NDArray

from central.runtime import open_object_store
from central.storage import ObjectStore
from demo.sample_faces import SamplePhoto
from tests.support.central_app import Central

PEOPLE = "/api/v1/people"


def jpeg(frame: NDArray[np.uint8]) -> bytes:
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return encoded.tobytes()


def photo(samples: dict[str, SamplePhoto], name: str) -> bytes:
    return samples[name].path.read_bytes()


def frame(samples: dict[str, SamplePhoto], name: str) -> NDArray[np.uint8]:
    image = cv2.imread(str(samples[name].path), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def landscape() -> bytes:
    """Colour gradients and a horizon: no face anywhere."""
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))
    image = cv2.merge([ramp, ramp[::-1], np.full_like(ramp, 90)])
    image[300:, :] = (40, 120, 60)
    return jpeg(np.asarray(image, dtype=np.uint8))


def two_faces(samples: dict[str, SamplePhoto]) -> bytes:
    """Obama and Biden side by side at the same height."""
    left, right = frame(samples, "obama"), frame(samples, "biden")
    height = min(left.shape[0], right.shape[0])

    def fit(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        width = round(image.shape[1] * height / image.shape[0])
        return np.asarray(cv2.resize(image, (width, height)), dtype=np.uint8)

    return jpeg(np.hstack([fit(left), fit(right)]))


def tiny_blurred_face(samples: dict[str, SamplePhoto]) -> bytes:
    """Obama's photo shrunk to a tenth and blurred, pasted into a large grey canvas: the detector
    still finds the face, the quality gate refuses it as too blurred."""
    small = cv2.resize(frame(samples, "obama"), None, fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    canvas = np.full((800, 1000, 3), 120, np.uint8)
    canvas[300 : 300 + small.shape[0], 400 : 400 + small.shape[1]] = small
    return jpeg(canvas)


def new_person(central: Central, external_id: str, **fields: Any) -> dict[str, Any]:
    response = central.client.post(PEOPLE, json={"external_id": external_id, **fields}, headers=central.admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def upload(
    central: Central, person_id: str, *files: tuple[str, bytes], headers: dict[str, str] | None = None
) -> httpx.Response:
    parts = [("photos", (name, data, "image/jpeg")) for name, data in files]
    return central.client.post(f"{PEOPLE}/{person_id}/photos", files=parts, headers=headers or central.admin)


def enroll(central: Central, person_id: str, name: str, data: bytes) -> dict[str, Any]:
    """Upload one photo and return its result."""
    response = upload(central, person_id, (name, data))
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()
    assert len(results) == 1
    return results[0]


def store(central: Central) -> ObjectStore:
    return open_object_store(central.settings)


def keys(central: Central, prefix: str) -> list[str]:
    return list(store(central).list(prefix))
