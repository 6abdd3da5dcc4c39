"""`facegate central enroll DIR`: zip a folder of people's photos, submit it as a job, follow it.

DIR holds one folder per person (folder name = external id) with that person's photos, and
optionally `people.csv`. Piped, output is JSON Lines on stdout: one `job` line (id, total, people,
skipped entries), a `result` line per photo as results arrive, `progress` lines when the counts
move, and a final `done` line; on a terminal, a progress bar with counts and an ETA, refused photos
listed above it (central/enrollment/jobs_progress.py). Exit status: 0 every photo accepted, 1 some
rejected, 2 the folder or archive was refused, 3 the server cannot be reached, refused the key,
failed, or the wait timed out.
"""

from __future__ import annotations

import io
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from central.enrollment.archive import PHOTO_EXTENSIONS
from central.enrollment.jobs_progress import JsonLines, Reporter, reporter

EXIT_OK, EXIT_REJECTED, EXIT_INPUT, EXIT_SETUP = 0, 1, 2, 3
RESULTS_PER_POLL = 500


class EnrollError(Exception):
    """The command cannot go on; `status` is its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def zip_folder(folder: Path) -> bytes:
    """The archive of `folder`: person folders and their files, plus top-level files (people.csv).
    Hidden files and symbolic links are left out; photos are stored, not compressed again."""
    if not folder.is_dir():
        raise EnrollError(f"{folder} is not a folder: pass the folder that holds one folder per person", 2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if (
                any(part.startswith(".") for part in relative.parts)
                or path.is_symlink()
                or not path.is_file()
            ):
                continue
            photo = path.suffix.lower() in PHOTO_EXTENSIONS
            archive.write(path, relative.as_posix(), zipfile.ZIP_STORED if photo else zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


class JobClient:
    """The two calls the command makes, over httpx (tests may pass a transport)."""

    def __init__(self, url: str, key: str, transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(300.0, connect=10.0),
            transport=transport,
        )

    def submit(self, data: bytes) -> dict[str, Any]:
        return self._call(
            "POST", "/enrollment-jobs", content=data, headers={"Content-Type": "application/zip"}
        )

    def poll(self, job_id: str, results_after: int) -> dict[str, Any]:
        params = {"results_after": results_after, "results_limit": RESULTS_PER_POLL}
        return self._call("GET", f"/enrollment-jobs/{job_id}", params=params)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise EnrollError(f"cannot reach {self.http.base_url}: {err}", EXIT_SETUP) from err
        if response.status_code >= 300:
            raise EnrollError(_message(response), _status_of(response.status_code))
        body: dict[str, Any] = response.json()
        return body


def follow(
    client: JobClient, data: bytes, poll_s: float, timeout_s: float, report: Reporter | None = None
) -> int:
    """Submit, then report results until the job ends; the exit status (see the module doc)."""
    report = report or JsonLines(sys.stdout)
    job = client.submit(data)
    report.job(job)
    deadline = time.monotonic() + timeout_s
    after, processed = -1, -1
    while True:
        state = client.poll(job["id"], after)
        for result in state["results"]:
            report.result(job["id"], result)
        after = state["next_results"] if state["next_results"] is not None else after
        if state["processed"] != processed:
            processed = state["processed"]
            report.progress(job["id"], state)
        if state["next_results"] is None:
            break
        if len(state["results"]) < RESULTS_PER_POLL:
            if time.monotonic() > deadline:
                raise EnrollError(
                    f"job {job['id']} still {state['status']} after {timeout_s:g} s", EXIT_SETUP
                )
            time.sleep(poll_s)
    report.done(job["id"], state)
    if state["status"] != "done":
        raise EnrollError(f"job {job['id']} failed: {state['error']}", EXIT_SETUP)
    return EXIT_REJECTED if state["rejected"] else EXIT_OK


def run(folder: Path, url: str, key: str, poll_s: float, timeout_s: float) -> int:
    """The command: EnrollError's message goes to stderr and its status is returned."""
    try:
        if not key:
            raise EnrollError("no API key: pass --key or set FACEGATE_API_KEY (an operator key)", EXIT_SETUP)
        data = zip_folder(folder)
        return follow(JobClient(url, key), data, poll_s, timeout_s, reporter(sys.stdout))
    except EnrollError as err:
        sys.stderr.write(f"facegate: {err}\n")
        return err.status


def default_url() -> str:
    return os.environ.get("FACEGATE_URL", "http://127.0.0.1:8080")


def _status_of(http_status: int) -> int:
    return EXIT_INPUT if 400 <= http_status < 500 and http_status not in {401, 403} else EXIT_SETUP


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        text = f"{body.get('code')}: {body.get('message')}"
    except (ValueError, AttributeError):
        text = response.text[:200]
    return f"the server answered {response.status_code} ({text})"
