"""Bulk enrollment jobs end to end: real zips of real photos through the Redis and in-process queues,
another replica taking a job over, restart safety, reads, access, and `facegate central enroll DIR`
against a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg

from central.auth.repository import create_key_sync
from central.db import migrate
from central.enrollment.archive import plan_archive
from central.enrollment.settings import archive_limits
from central.lifespan import Workers
from central.runtime import open_object_store
from central.settings import CentralSettings
from central.storage import FileSettings
from central.storage.keys import job_key
from demo.sample_faces import SamplePhoto
from devtools.services import PostgresService
from devtools.services.central import serve
from tests.support.central_app import SECRET, Central, make_settings, start_central
from tests.support.job_archives import JOBS, batch_entries, build_zip, outcomes, post_zip, wait_done

FACEGATE = str(Path(sys.executable).parent / "facegate")

EXPECTED = {
    "biden/biden.jpg": ("accepted", None),
    "nobody/blank.png": ("rejected", "no_face"),
    "obama/obama.jpg": ("accepted", None),
    "obama/obama2.jpg": ("accepted", None),
}


async def stop_job_workers(workers: Workers) -> None:
    """Cancel this replica's job workers and sweep (as if they were all busy elsewhere)."""
    mine = [t for t in workers.tasks if t.get_name().startswith("enrollment-job")]
    for task in mine:
        task.cancel()
    for task in mine:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_job_redis_queue_enrolls_a_real_batch_with_reasons(
    central: Central, samples: Mapping[str, SamplePhoto]
) -> None:
    response = post_zip(central, build_zip(batch_entries(samples)))
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["status"], job["total"], job["people"]) == ("queued", 4, 3)
    assert job["skipped"] == [{"entry": "obama/notes.txt", "reason": "not_an_image"}]
    done = wait_done(central, job["id"])
    assert done["status"] == "done" and done["error"] is None
    assert outcomes(done) == EXPECTED
    assert (done["processed"], done["accepted"], done["rejected"]) == (4, 3, 1)
    assert all(r["photo_id"] and r["template_id"] for r in done["results"] if r["status"] == "accepted")


def test_job_in_process_queue_works_without_redis(
    postgres_db: PostgresService, model_dir: Path, tmp_path: Path, samples: Mapping[str, SamplePhoto]
) -> None:
    settings = make_settings(postgres_db, FileSettings(tmp_path, SECRET), model_dir, redis_url=None)
    for central in start_central(settings):
        job = post_zip(central, build_zip(batch_entries(samples))).json()
        done = wait_done(central, job["id"])
        assert outcomes(done) == EXPECTED
        assert list(central.client.app.state.runtime.store.list("jobs/")) == []  # archive deleted


def test_job_multipart_upload_of_a_wrapped_folder_is_queued(
    central: Central, samples: Mapping[str, SamplePhoto]
) -> None:
    data = build_zip(batch_entries(samples, prefix="batch/"), zipfile.ZIP_DEFLATED)
    files = {"archive": ("batch.zip", data, "application/zip")}
    response = central.client.post(JOBS, files=files, headers=central.admin)
    assert response.status_code == 202, response.text
    assert (response.json()["total"], response.json()["people"]) == (4, 3)
    assert outcomes(wait_done(central, response.json()["id"])) == EXPECTED


def test_job_queued_by_one_replica_is_processed_by_another(
    central_settings: CentralSettings, samples: Mapping[str, SamplePhoto]
) -> None:
    for first in start_central(central_settings):
        first.client.blocking_portal.call(stop_job_workers, first.client.app.state.workers)
        job = post_zip(first, build_zip(batch_entries(samples))).json()
        time.sleep(1.5)
        assert first.client.get(f"{JOBS}/{job['id']}", headers=first.admin).json()["status"] == "queued"
        for second in start_central(central_settings):
            assert outcomes(wait_done(second, job["id"])) == EXPECTED


def test_job_whose_worker_died_is_taken_over_at_start_without_redoing_results(
    central_settings: CentralSettings, samples: Mapping[str, SamplePhoto]
) -> None:
    settings = replace(central_settings, redis_url=None)
    job_id, data = uuid4(), build_zip(batch_entries(samples))
    plan = plan_archive(data, archive_limits(settings))
    store = open_object_store(settings)
    store.ensure_buckets()
    store.put(job_key(job_id), data, "application/zip")
    migrate(settings.database_url)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO enrollment_jobs (id, status, created_by, object_key, total, people, claimed_by,"
            " lease_until, attempts, started_at, processed, rejected) VALUES (%s, 'running', 'system', %s,"
            " %s, %s, 'dead-replica', now() - interval '1 minute', 1, now(), 1, 1)",
            (job_id, job_key(job_id), len(plan.photos), len(plan.people)),
        )
        conn.execute(
            "INSERT INTO enrollment_job_results (job_id, seq, external_id, filename, status, reason)"
            " VALUES (%s, 0, 'biden', 'biden.jpg', 'rejected', 'bad_image')",
            (job_id,),
        )
    for central in start_central(settings):
        done = wait_done(central, str(job_id))
        assert outcomes(done) == {**EXPECTED, "biden/biden.jpg": ("rejected", "bad_image")}
        assert (done["processed"], done["accepted"], done["rejected"]) == (4, 2, 2)
        with central.db() as conn:
            assert conn.execute("SELECT count(*) FROM people WHERE external_id = 'biden'").fetchone() == (0,)


def test_job_running_at_shutdown_is_released_and_finished_after_restart(
    central_settings: CentralSettings, samples: Mapping[str, SamplePhoto]
) -> None:
    settings = replace(central_settings, redis_url=None)
    face = samples["obama"].path.read_bytes()
    data = build_zip({f"p{i:03}/face.jpg": face for i in range(60)})
    for central in start_central(settings):
        job_id = post_zip(central, data).json()["id"]
        deadline = time.monotonic() + 60
        while central.client.get(f"{JOBS}/{job_id}", headers=central.admin).json()["processed"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT status, claimed_by, processed FROM enrollment_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None and row[:2] == ("queued", None) and 0 < row[2] < 60
    for central in start_central(settings):
        done = wait_done(central, job_id)
        assert done["status"] == "done" and done["processed"] == 60
        assert [r["seq"] for r in done["results"]] == list(range(60))


def test_job_same_archive_again_reports_duplicate_photos(
    central: Central, samples: Mapping[str, SamplePhoto]
) -> None:
    data = build_zip(batch_entries(samples))
    wait_done(central, post_zip(central, data).json()["id"])
    again = wait_done(central, post_zip(central, data).json()["id"])
    assert outcomes(again) == {
        "biden/biden.jpg": ("rejected", "duplicate_photo"),
        "nobody/blank.png": ("rejected", "no_face"),
        "obama/obama.jpg": ("rejected", "duplicate_photo"),
        "obama/obama2.jpg": ("rejected", "duplicate_photo"),
    }


def test_job_results_are_paged_with_results_after(
    central: Central, samples: Mapping[str, SamplePhoto]
) -> None:
    job_id = post_zip(central, build_zip(batch_entries(samples))).json()["id"]
    wait_done(central, job_id)
    seen: list[int] = []
    after: int | None = -1
    while after is not None:
        page: dict[str, Any] = central.client.get(
            f"{JOBS}/{job_id}", params={"results_after": after, "results_limit": 3}, headers=central.admin
        ).json()
        seen += [r["seq"] for r in page["results"]]
        after = page["next_results"]
    assert seen == [0, 1, 2, 3]


def test_job_list_is_most_recent_first_with_a_cursor(
    central: Central, samples: Mapping[str, SamplePhoto]
) -> None:
    data = build_zip({"alice/1.jpg": samples["grace_hopper"].path.read_bytes()})
    ids = [post_zip(central, data).json()["id"] for _ in range(3)]
    first = central.client.get(JOBS, params={"limit": 2}, headers=central.admin).json()
    rest = central.client.get(
        JOBS, params={"limit": 2, "cursor": first["next"]}, headers=central.admin
    ).json()
    assert [j["id"] for j in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next"] is None


def test_job_create_needs_an_unrestricted_operator_key(central: Central) -> None:
    with central.db() as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site 1')")
    data = build_zip({"alice/1.jpg": b"\xff\xd8\xff" + bytes(100)})
    assert post_zip(central, data, central.as_(central.key("viewer"))).status_code == 403
    assert post_zip(central, data, central.as_(central.key("operator", ["s1"]))).status_code == 403
    viewer = central.as_(central.key("viewer"))
    assert central.client.get(JOBS, headers=viewer).status_code == 200


def test_job_create_is_audited(central: Central) -> None:
    job_id = post_zip(central, build_zip({"alice/1.jpg": b"\xff\xd8\xff" + bytes(100)})).json()["id"]
    with central.db() as conn:
        actions = conn.execute(
            "SELECT action, details->>'photos' FROM audit_log WHERE target_id = %s ORDER BY id", (job_id,)
        ).fetchall()
    assert actions[0] == ("enrollment_job.create", "1")


def test_job_unknown_id_is_404(central: Central) -> None:
    response = central.client.get(f"{JOBS}/{uuid4()}", headers=central.admin)
    assert response.status_code == 404 and response.json()["code"] == "job_not_found"


def enroll_command(folder: Path, url: str, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACEGATE, "central", "enroll", str(folder), "--url", url, "--key", key, "--poll", "0.2"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def enroll_on_terminal(folder: Path, url: str, key: str) -> str:
    """`facegate central enroll` with its output on a pseudo-terminal: what it wrote there."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [FACEGATE, "central", "enroll", str(folder), "--url", url, "--key", key, "--poll", "0.2"],
            stdout=terminal,
            stderr=terminal,
        )
    finally:
        os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert proc.wait(timeout=180) == 1
    return b"".join(chunks).decode()


def test_job_cli_enrolls_a_folder_and_exits_1_on_rejections(
    central_settings: CentralSettings, samples: Mapping[str, SamplePhoto], tmp_path: Path
) -> None:
    for name, data in batch_entries(samples).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with serve(central_settings) as url:
        with psycopg.connect(central_settings.database_url) as conn:
            key = create_key_sync(conn, "cli", "operator").display
        proc = enroll_command(tmp_path, url, key)
        terminal = enroll_on_terminal(tmp_path, url, key)  # the same folder again, onto a terminal
    assert proc.returncode == 1, proc.stderr
    assert "{" not in terminal  # a progress bar, not JSON Lines
    assert "4 photos of 3 people" in terminal and "refused nobody/blank.png: no face" in terminal
    assert re.search(r"\[#{30}\] 4/4 photos 100%  0 accepted  4 refused  ETA 0:00", terminal), terminal
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["event"] == "job" and lines[0]["total"] == 4
    results = {
        f"{r['external_id']}/{r['filename']}": (r["status"], r["reason"])
        for r in lines
        if r["event"] == "result"
    }
    assert results == EXPECTED
    assert lines[-1] == {**lines[-1], "event": "done", "status": "done", "accepted": 3, "rejected": 1}
    assert any(line["event"] == "progress" for line in lines)


def test_job_cli_missing_folder_exits_2(tmp_path: Path) -> None:
    proc = enroll_command(tmp_path / "absent", "http://127.0.0.1:1", "fg_key")
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_job_cli_unreachable_server_exits_3(tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "1.jpg").write_bytes(b"\xff\xd8\xff")
    proc = enroll_command(tmp_path, "http://127.0.0.1:1", "fg_key")
    assert proc.returncode == 3 and "cannot reach" in proc.stderr
