"""Where job ids wait for a worker: a Redis list shared by every replica, or an in-process queue.

The queue only carries wake-ups. PostgreSQL is the truth: a worker claims the job there (so a
duplicated id is harmless), and the lease sweep enqueues again any job whose id was lost (popped
by a replica that died, or a Redis that lost data), so no processing list is kept in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol
from uuid import UUID

import psycopg
import redis.asyncio as aioredis
from psycopg.conninfo import conninfo_to_dict
from redis.exceptions import RedisError

from common.errors import FacegateError

log = logging.getLogger("central.enrollment.jobs")

REDIS_QUEUE_PREFIX = "facegate:enrollment-jobs:"
REDIS_RETRY_S = 1.0


class JobQueue(Protocol):
    async def put(self, job_id: UUID) -> None:
        """Enqueue; QueueUnavailable when the id could not be handed over (the sweep retries it)."""

    async def take(self, timeout_s: float) -> UUID | None:
        """The next job id, or None after `timeout_s` (or a transient failure)."""


class QueueUnavailable(FacegateError):  # noqa: N818  # the queue, not the job, is what is unavailable
    """The queue refused an id; the job stays queued in PostgreSQL and the lease sweep enqueues it."""


class LocalQueue:
    """In-process queue (no FACEGATE_REDIS_URL): only this replica's workers see its ids."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[UUID] = asyncio.Queue()

    async def put(self, job_id: UUID) -> None:
        self.queue.put_nowait(job_id)

    async def take(self, timeout_s: float) -> UUID | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        return None


def redis_queue_key(database_url: str) -> str:
    """`facegate:enrollment-jobs:<database name>`: deployments sharing one Redis database keep their
    queues apart (every replica of one deployment names the same database)."""
    try:
        dbname = conninfo_to_dict(database_url).get("dbname") or ""
    except psycopg.ProgrammingError:
        dbname = ""
    return f"{REDIS_QUEUE_PREFIX}{dbname or 'default'}"


class RedisQueue:
    """A Redis list: LPUSH to enqueue, BRPOP to take, so any replica's workers take any job."""

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    async def put(self, job_id: UUID) -> None:
        try:
            await self.client.lpush(self.key, str(job_id))
        except (RedisError, OSError) as err:
            raise QueueUnavailable(f"redis refused job {job_id}: {err}") from err

    async def take(self, timeout_s: float) -> UUID | None:
        try:
            popped = await self.client.brpop([self.key], timeout=max(1, round(timeout_s)))
        except (RedisError, OSError) as err:
            log.warning("job_queue_unavailable", extra={"error": str(err)})
            await asyncio.sleep(REDIS_RETRY_S)
            return None
        if popped is None:
            return None
        raw = popped[1]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            return UUID(text)
        except ValueError:
            log.warning("job_queue_bad_entry", extra={"entry": text[:64]})
            return None


async def enqueue(queue: JobQueue, job_id: UUID) -> None:
    """Hand the id to a worker; a queue failure is logged (the lease sweep enqueues the job later)."""
    try:
        await queue.put(job_id)
    except QueueUnavailable as err:
        log.warning("enrollment_job_enqueue_failed", extra={"job_id": str(job_id), "error": str(err)})


def job_queue(redis: aioredis.Redis | None, database_url: str) -> JobQueue:
    """The Redis queue when FACEGATE_REDIS_URL is set (shared by the replicas), else the in-process one."""
    if redis is None:
        return LocalQueue()
    return RedisQueue(redis, redis_queue_key(database_url))
