"""Enrollment in PostgreSQL: the rows an accepted photo becomes (photo, template), the duplicate index's
reads, and bulk jobs (insert, read, list, and the claim/lease/progress steps of workers).

Every function runs inside the caller's transaction (`async with pool.connection()`).
Job worker steps name the worker (`claimed_by`) so a replica that lost its lease to another cannot
finish, release or renew the job; results are keyed by (job, seq), so a photo processed twice
(after a takeover) counts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from central.enrollment.archive import ArchivePlan, SkippedEntry
from central.enrollment.schemas import JobRead, JobResult, JobStatus, JobSummary
from central.errors import InvalidInput
from common.cursor import CursorError, decode_time_id_cursor, encode_time_id_cursor

MAX_SKIPPED_LISTED = 1000
_PHOTO_CHECK = """
SELECT (SELECT ep.id FROM enrollment_photos ep WHERE ep.person_id = p.id AND ep.sha256 = %s)
  FROM people p WHERE p.id = %s AND p.deleted_at IS NULL
"""
_LOCK_MODEL = "SELECT pg_advisory_xact_lock(hashtext(%s))"
_EXISTING = "SELECT id FROM enrollment_photos WHERE person_id = %s AND sha256 = %s"
_INSERT_PHOTO = """
INSERT INTO enrollment_photos (id, person_id, object_key, sha256, width, height, quality, status)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'accepted')
"""
_INSERT_TEMPLATE = """
INSERT INTO templates (id, person_id, model_id, embedding_size, embedding, source_photo_id)
VALUES (%s, %s, %s, %s, %s, %s)
"""
_FINGERPRINT = """
SELECT count(*), coalesce(sum(('x' || left(id::text, 8))::bit(32)::bigint), 0)
  FROM templates WHERE model_id = %s
"""
_IDS = "SELECT id, person_id FROM templates WHERE model_id = %s"
_EMBEDDINGS = "SELECT id, embedding FROM templates WHERE id = ANY(%s)"
_LEASE = "now() + make_interval(secs => %s)"
_SUMMARY = """id, status, created_by, created_at, started_at, finished_at, total, processed, accepted,
 rejected, people, skipped_count, error"""
_RESULT = """seq, external_id, filename, status, reason, message, photo_id, template_id, quality,
 similar_person_id"""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: UUID
    object_key: str
    created_by: str
    attempts: int


# --- photos and templates ----------------------------------------------------------------------------


async def photo_check(conn: AsyncConnection[Any], person_id: UUID, digest: str) -> tuple[bool, UUID | None]:
    """(whether the live person exists, the id of their photo with this sha256 if they have one)."""
    row = await (await conn.execute(_PHOTO_CHECK, (digest, person_id))).fetchone()
    return (False, None) if row is None else (True, row[0])


async def lock_model(conn: AsyncConnection[Any], model_id: str) -> None:
    """Serialise enrollments of one model until the caller's transaction ends (an advisory lock)."""
    await conn.execute(_LOCK_MODEL, (f"facegate.templates:{model_id}",))


async def existing_photo(conn: AsyncConnection[Any], person_id: UUID, digest: str) -> UUID | None:
    row = await (await conn.execute(_EXISTING, (person_id, digest))).fetchone()
    return None if row is None else row[0]


async def insert_photo(  # noqa: PLR0917  # one argument per column
    conn: AsyncConnection[Any],
    photo_id: UUID,
    person_id: UUID,
    key: str,
    digest: str,
    size: tuple[int, int],
    quality: float,
) -> None:
    """An accepted photo's row; `size` is (width, height)."""
    await conn.execute(_INSERT_PHOTO, (photo_id, person_id, key, digest, size[0], size[1], quality))


async def insert_template(  # noqa: PLR0917  # one argument per column
    conn: AsyncConnection[Any],
    template_id: UUID,
    person_id: UUID,
    model_id: str,
    embedding: bytes,
    photo_id: UUID,
) -> None:
    """A template (`embedding`: little-endian float32) made from photo `photo_id`."""
    size = len(embedding) // 4
    await conn.execute(_INSERT_TEMPLATE, (template_id, person_id, model_id, size, embedding, photo_id))


async def template_fingerprint(conn: AsyncConnection[Any], model_id: str) -> tuple[int, int]:
    """(count, sum of the first 32 bits of the ids) of the model's templates: changes when they do."""
    row = await (await conn.execute(_FINGERPRINT, (model_id,))).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def template_owners(conn: AsyncConnection[Any], model_id: str) -> list[tuple[UUID, UUID]]:
    """(template id, person id) of every template of the model."""
    rows: list[tuple[UUID, UUID]] = await (await conn.execute(_IDS, (model_id,))).fetchall()
    return rows


async def embeddings(conn: AsyncConnection[Any], templates: list[UUID]) -> list[tuple[UUID, bytes]]:
    """(template id, stored embedding) of the templates that still exist."""
    rows = await (await conn.execute(_EMBEDDINGS, (templates,))).fetchall()
    return [(tid, bytes(blob)) for tid, blob in rows]


# --- bulk jobs ---------------------------------------------------------------------------------------


async def insert_job(
    conn: AsyncConnection[Any],
    job_id: UUID,
    *,
    created_by: str,
    object_key: str,
    plan: ArchivePlan,
    lease_s: float,
) -> JobRead:
    """A queued job for `plan`; its lease_until is when a sweep may enqueue it again."""
    skipped = [msgspec.to_builtins(s) for s in plan.skipped[:MAX_SKIPPED_LISTED]]
    cur = await conn.execute(
        f"INSERT INTO enrollment_jobs (id, created_by, object_key, total, people, skipped, skipped_count,"
        f" lease_until) VALUES (%s, %s, %s, %s, %s, %s, %s, {_LEASE}) RETURNING {_SUMMARY}, skipped",
        (job_id, created_by, object_key, len(plan.photos), len(plan.people), Jsonb(skipped),
         len(plan.skipped), lease_s),
    )  # fmt: skip
    row = await cur.fetchone()
    assert row is not None
    return _read(row)


async def get_job(conn: AsyncConnection[Any], job_id: UUID, results_after: int, limit: int) -> JobRead | None:
    """The job with `limit` results after seq `results_after` (see JobRead.next_results)."""
    cur = await conn.execute(f"SELECT {_SUMMARY}, skipped FROM enrollment_jobs WHERE id = %s", (job_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    job = _read(row)
    cur = await conn.execute(
        f"SELECT {_RESULT} FROM enrollment_job_results WHERE job_id = %s AND seq > %s ORDER BY seq LIMIT %s",
        (job_id, results_after, limit),
    )
    results = [JobResult(*r) for r in await cur.fetchall()]
    running = job.status in {"queued", "running"}
    if running:
        # Photos finish out of plan order (a rejection is quicker than an enrollment): while the job runs,
        # hand out only the gap-free run after `results_after`, so a later poll never skips a slower photo.
        prefix: list[JobResult] = []
        for result in results:
            if result.seq != results_after + 1 + len(prefix):
                break
            prefix.append(result)
        results = prefix
    last = results[-1].seq if results else results_after
    more = len(results) == limit or running
    return msgspec.structs.replace(job, results=results, next_results=last if more else None)


async def list_jobs(
    conn: AsyncConnection[Any], limit: int, cursor: str | None
) -> tuple[list[JobSummary], str | None]:
    """Jobs, most recent first, and the cursor of the next page (None on the last)."""
    if cursor is None:
        cur = await conn.execute(
            f"SELECT {_SUMMARY} FROM enrollment_jobs ORDER BY created_at DESC, id DESC LIMIT %s", (limit + 1,)
        )
    else:
        created_at, last_id = decode_cursor(cursor)
        cur = await conn.execute(
            f"SELECT {_SUMMARY} FROM enrollment_jobs WHERE (created_at, id) < (%s, %s)"
            " ORDER BY created_at DESC, id DESC LIMIT %s",
            (created_at, last_id, limit + 1),
        )
    rows = await cur.fetchall()
    jobs = [JobSummary(*row) for row in rows[:limit]]
    following = encode_cursor(jobs[-1].created_at, jobs[-1].id) if len(rows) > limit else None
    return jobs, following


def encode_cursor(created_at: datetime, job_id: UUID) -> str:
    return encode_time_id_cursor(created_at, job_id)


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        return decode_time_id_cursor(cursor)
    except CursorError as err:
        raise InvalidInput("cursor is not one this API returned: start again without it") from err


async def claim_job(
    conn: AsyncConnection[Any], job_id: UUID, worker: str, lease_s: float
) -> ClaimedJob | None:
    """Take the job if it is queued or its holder's lease expired; None when another worker has it."""
    cur = await conn.execute(
        f"UPDATE enrollment_jobs SET status = 'running', claimed_by = %s, lease_until = {_LEASE},"
        " started_at = coalesce(started_at, now()), attempts = attempts + 1"
        " WHERE id = %s AND (status = 'queued' OR (status = 'running' AND lease_until < now()))"
        " RETURNING id, object_key, created_by, attempts",
        (worker, lease_s, job_id),
    )
    row = await cur.fetchone()
    return None if row is None else ClaimedJob(*row)


async def renew_lease(conn: AsyncConnection[Any], job_id: UUID, worker: str, lease_s: float) -> bool:
    """Extend the worker's lease; False when the job is no longer this worker's."""
    cur = await conn.execute(
        f"UPDATE enrollment_jobs SET lease_until = {_LEASE}"
        " WHERE id = %s AND claimed_by = %s AND status = 'running' RETURNING id",
        (lease_s, job_id, worker),
    )
    return await cur.fetchone() is not None


async def done_seqs(conn: AsyncConnection[Any], job_id: UUID) -> set[int]:
    cur = await conn.execute("SELECT seq FROM enrollment_job_results WHERE job_id = %s", (job_id,))
    return {int(row[0]) for row in await cur.fetchall()}


async def record_result(conn: AsyncConnection[Any], job_id: UUID, result: JobResult) -> bool:
    """Store one photo's result and count it; False (nothing counted) when it was stored before."""
    cur = await conn.execute(
        f"INSERT INTO enrollment_job_results (job_id, {_RESULT}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s) ON CONFLICT (job_id, seq) DO NOTHING RETURNING seq",
        (job_id, result.seq, result.external_id, result.filename, result.status, result.reason,
         result.message, result.photo_id, result.template_id, result.quality, result.similar_person_id),
    )  # fmt: skip
    if await cur.fetchone() is None:
        return False
    accepted = 1 if result.status == "accepted" else 0
    await conn.execute(
        "UPDATE enrollment_jobs SET processed = processed + 1, accepted = accepted + %s,"
        " rejected = rejected + %s WHERE id = %s",
        (accepted, 1 - accepted, job_id),
    )
    return True


async def finish_job(
    conn: AsyncConnection[Any], job_id: UUID, worker: str, status: JobStatus, error: str | None
) -> bool:
    """Mark the job done or failed; False when it is no longer this worker's."""
    cur = await conn.execute(
        "UPDATE enrollment_jobs SET status = %s, error = %s, finished_at = now(), claimed_by = NULL,"
        " lease_until = NULL WHERE id = %s AND claimed_by = %s AND status = 'running' RETURNING id",
        (status, error, job_id, worker),
    )
    return await cur.fetchone() is not None


async def release_job(conn: AsyncConnection[Any], job_id: UUID, worker: str) -> None:
    """Give the job back (replica shutting down): queued again, takeable by any replica at once."""
    await conn.execute(
        "UPDATE enrollment_jobs SET status = 'queued', claimed_by = NULL, lease_until = now()"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (job_id, worker),
    )


async def stale_jobs(conn: AsyncConnection[Any], lease_s: float) -> list[UUID]:
    """Jobs to enqueue again: queued or running with an expired lease (its worker died). They become
    queued with a new lease in the same statement, so of several replicas sweeping at once only one
    enqueues each job, and a worker that was merely slow loses the job at its next renewal."""
    cur = await conn.execute(
        f"UPDATE enrollment_jobs SET status = 'queued', claimed_by = NULL, lease_until = {_LEASE}"
        " WHERE status IN ('queued', 'running') AND lease_until < now() RETURNING id",
        (lease_s,),
    )
    return [UUID(str(row[0])) for row in await cur.fetchall()]


def _read(row: tuple[Any, ...]) -> JobRead:
    summary = JobSummary(*row[:-1])
    skipped = msgspec.convert(row[-1], list[SkippedEntry])
    return JobRead(**msgspec.structs.asdict(summary), skipped=skipped)
