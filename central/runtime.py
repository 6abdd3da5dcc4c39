"""What a running central holds: its plain resources, opened by the lifespan and closed by it.

`open_runtime(settings, metrics)` does the I/O (migrations under the advisory lock, object-store
buckets, model load and warm-up, the pool, the Redis ping); `close_runtime` undoes it. `Runtime`
starts nothing and has no behaviour: central/lifespan.py builds the services and starts the workers
from it, and only that module (and the app factory) sees it. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import anyio.to_thread
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from central.db import migrate, open_async_pool
from central.db.pool import AsyncPool
from central.metrics import Metrics
from central.settings import CentralSettings
from central.storage import FileStore, ObjectStore, S3Settings, S3Store
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from common.pipeline.runtime import RuntimeSettings

log = logging.getLogger("central.runtime")


@dataclass(frozen=True, slots=True)
class Runtime:
    """The resources of one app. The executor is here, not in a service, because it is a pool of threads
    to shut down once the workers that use it have stopped, like the connection pool."""

    settings: CentralSettings
    metrics: Metrics
    pool: AsyncPool
    store: ObjectStore
    redis: aioredis.Redis | None
    """A client for FACEGATE_REDIS_URL (None without it); Redis being down at start-up is not fatal."""
    pipeline: FacePipeline
    """The enrollment face pipeline (models loaded and warmed up)."""
    executor: ThreadPoolExecutor
    """FACEGATE_ENROLL_WORKERS threads that run the face pipeline off the event loop."""


async def open_runtime(settings: CentralSettings, metrics: Metrics) -> Runtime:
    """Migrate (when FACEGATE_MIGRATE_ON_START), create the buckets, load the models, open the pool and
    Redis. Raises what fails (the app then does not start)."""
    if settings.migrate_on_start:
        applied = await anyio.to_thread.run_sync(migrate, settings.database_url)
        log.info("migrations_checked", extra={"applied": applied})
    store = open_object_store(settings)
    await anyio.to_thread.run_sync(store.ensure_buckets)
    pipeline = await anyio.to_thread.run_sync(load_pipeline, settings)
    pool = await open_async_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
    metrics.watch_pool(pool.get_stats)
    return Runtime(
        settings=settings,
        metrics=metrics,
        pool=pool,
        store=store,
        redis=await open_redis(settings.redis_url),
        pipeline=pipeline,
        executor=ThreadPoolExecutor(settings.enroll_workers, thread_name_prefix="enroll"),
    )


async def close_runtime(runtime: Runtime) -> None:
    """Release the resources, after every worker has stopped: threads, Redis, then the pool."""
    runtime.executor.shutdown(wait=True, cancel_futures=True)
    if runtime.redis is not None:
        await runtime.redis.aclose()
    await runtime.pool.close()


def open_object_store(settings: CentralSettings) -> ObjectStore:
    """The store of FACEGATE_S3_* or FACEGATE_STORAGE_DIR (no I/O: `ensure_buckets` does that)."""
    if isinstance(settings.storage, S3Settings):
        return S3Store(settings.storage)
    return FileStore(settings.storage)


async def open_redis(url: str | None) -> aioredis.Redis | None:
    """A client for FACEGATE_REDIS_URL; an unreachable Redis is logged (and shown by /ready), not fatal."""
    if not url:
        return None
    client: aioredis.Redis = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        await client.ping()
    except (RedisError, OSError) as err:
        log.warning("redis_unavailable_at_start", extra={"error": str(err)})
    return client


def load_pipeline(settings: CentralSettings) -> FacePipeline:
    """The enrollment pipeline: detection at the default 640 px, one intra-op thread per worker (the
    workers run in parallel). Always onnxruntime: its sessions run the workers' calls side by side,
    where an OpenCV net would take them one at a time (docs/pipeline.md)."""
    pipeline_settings = PipelineSettings(
        detector=settings.detector,
        recognizer=settings.recognizer,
        models_dir=str(settings.models_dir),
        runtime=RuntimeSettings(intra_op_threads=1, backend="onnxruntime"),
    )
    return FacePipeline.load(pipeline_settings)
