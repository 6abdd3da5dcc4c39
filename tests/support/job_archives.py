"""Zip archives for the bulk-enrollment job tests: real sample photos, a face-less image, bad archives."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from demo.sample_faces import SamplePhoto
from tests.support.central_app import Central

JOBS = "/api/v1/enrollment-jobs"


def build_zip(entries: Mapping[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def faceless_png() -> bytes:
    """A 240x240 gradient: decodes fine, holds no face."""
    ramp = np.tile(np.linspace(0, 255, 240, dtype=np.uint8), (240, 1))
    ok, encoded = cv2.imencode(".png", np.dstack([ramp, ramp.T, np.full_like(ramp, 90)]))
    assert ok
    return bytes(encoded.tobytes())


def batch_entries(samples: Mapping[str, SamplePhoto], prefix: str = "") -> dict[str, bytes]:
    """obama/ (two photos and a text file), biden/ (one photo), nobody/ (a face-less image)."""
    return {
        f"{prefix}obama/obama.jpg": samples["obama"].path.read_bytes(),
        f"{prefix}obama/obama2.jpg": samples["obama2"].path.read_bytes(),
        f"{prefix}obama/notes.txt": b"not a photo",
        f"{prefix}biden/biden.jpg": samples["biden"].path.read_bytes(),
        f"{prefix}nobody/blank.png": faceless_png(),
    }


def post_zip(central: Central, data: bytes, headers: Mapping[str, str] | None = None) -> Any:
    return central.client.post(
        JOBS, content=data, headers={**(headers or central.admin), "Content-Type": "application/zip"}
    )


def wait_done(central: Central, job_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """Poll the job until it is done or failed, with every result; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = central.client.get(
            f"{JOBS}/{job_id}", params={"results_limit": 1000}, headers=central.admin
        ).json()
        if body["status"] in {"done", "failed"}:
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s")


def outcomes(job: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """`person/file` -> (status, reason) for every result of `job`."""
    return {f"{r['external_id']}/{r['filename']}": (r["status"], r["reason"]) for r in job["results"]}


def job_rows(central: Central) -> int:
    with central.db() as conn:
        row = conn.execute("SELECT count(*) FROM enrollment_jobs").fetchone()
    assert row is not None
    return int(row[0])
