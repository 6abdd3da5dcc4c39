"""What a running central holds: pool, object store, Redis, face pipeline, workers. Opened by the lifespan.

`Runtime.start(settings, metrics)` does all the I/O (migrations under the advisory lock, pool, buckets,
Redis ping, model load and warm-up); `close()` undoes it. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import psycopg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from central.auth.authenticator import Authenticator
from central.auth.ratelimit import RateLimiter, make_rate_limiter
from central.db import ensure_event_partitions, migrate, open_async_pool
from central.db.pool import AsyncPool
from central.http.metrics import Metrics
from central.settings import CentralSettings
from central.storage import FileStore, ObjectStore, S3Store
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from common.pipeline.runtime import RuntimeSettings

if TYPE_CHECKING:
    from central.enrollment.workers import JobWorkers
    from central.fleet.state import FleetState
    from central.ingest.consumer import Ingest
    from central.live.hub import LiveHub
    from central.mqtt.client import CentralMqtt

log = logging.getLogger("central.runtime")

PARTITION_EVERY_S = 6 * 3600.0
"""How often each replica makes sure next months' event partitions exist (idempotent)."""


class Runtime:
    """The live dependencies of one app (a plain class: handlers receive it as the `runtime` dependency)."""

    def __init__(  # noqa: PLR0917  # one field per dependency, built only by start()
        self,
        settings: CentralSettings,
        metrics: Metrics,
        pool: AsyncPool,
        store: ObjectStore,
        redis: aioredis.Redis | None,
        limiter: RateLimiter,
        authenticator: Authenticator,
        pipeline: FacePipeline,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pool = pool
        self.store = store
        self.redis = redis
        self.limiter = limiter
        self.authenticator = authenticator
        self.pipeline = pipeline
        self.executor = executor
        self.tasks: list[asyncio.Task[Any]] = []
        self.jobs: JobWorkers | None = None
        """Bulk enrollment job queue and workers (central/enrollment/workers.py), set by start()."""
        self.live: LiveHub | None = None
        """This replica's WebSocket clients for /ws/events (central/live/), set by start()."""
        self.mqtt: CentralMqtt | None = None
        """The MQTT client (central/mqtt/), set by start() when FACEGATE_MQTT_URL is set."""
        self.ingest: Ingest | None = None
        self.fleet_state: FleetState | None = None

    @classmethod
    async def start(cls, settings: CentralSettings, metrics: Metrics) -> Runtime:
        if settings.migrate_on_start:
            applied = await anyio.to_thread.run_sync(migrate, settings.database_url)
            log.info("migrations_checked", extra={"applied": applied})
        store = open_object_store(settings)
        await anyio.to_thread.run_sync(store.ensure_buckets)
        pipeline = await anyio.to_thread.run_sync(load_pipeline, settings)
        pool = await open_async_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
        metrics.watch_pool(pool.get_stats)
        runtime = cls(
            settings=settings,
            metrics=metrics,
            pool=pool,
            store=store,
            redis=await open_redis(settings.redis_url),
            limiter=make_rate_limiter(
                settings.redis_url, settings.rate_limit_per_s, settings.rate_limit_burst
            ),
            authenticator=Authenticator(pool, settings.secret_key, cache_s=settings.key_cache_s),
            pipeline=pipeline,
            executor=ThreadPoolExecutor(settings.enroll_workers, thread_name_prefix="enroll"),
        )
        runtime.tasks.append(asyncio.create_task(runtime.keep_partitions(), name="event-partitions"))
        from central.enrollment.workers import JobWorkers  # imports this module: not at the top
        from central.people.cleanup import sweep_forever

        runtime.jobs = JobWorkers.for_runtime(runtime)
        runtime.tasks.extend(runtime.jobs.start())
        runtime.tasks.append(asyncio.create_task(sweep_forever(runtime), name="pending-deletions"))
        if settings.mqtt_url:
            await runtime.start_mqtt()
        from central.live.fanout import start_live
        from central.monitoring.refresher import refresh_forever

        runtime.tasks.extend(start_live(runtime))
        runtime.tasks.append(asyncio.create_task(refresh_forever(runtime), name="fleet-gauges"))
        runtime.start_distribution()
        return runtime

    def start_distribution(self) -> None:
        """Gallery distribution (central/distribution/) when central has an MQTT client (`mqtt`)."""
        if self.mqtt is not None:
            from central.distribution.service import start_distribution

            self.tasks.extend(start_distribution(self, self.mqtt))

    async def start_mqtt(self) -> None:
        """The MQTT client, event ingest and fleet state (docs/central-ingest.md); connects in the
        background (a broker that is down is retried)."""
        from central.fleet.state import FleetState
        from central.ingest.consumer import Ingest, ingest_settings
        from central.live.fanout import publish_events
        from central.mqtt.client import CentralMqtt
        from central.mqtt.options import MqttOptions

        async def fan_out(events: list[dict[str, Any]]) -> None:
            await publish_events(self, events)

        self.mqtt = CentralMqtt(MqttOptions.from_settings(self.settings))
        self.ingest = Ingest(
            self.mqtt, self.pool, self.store, self.metrics, ingest_settings(self.settings), on_commit=fan_out
        )
        self.fleet_state = FleetState(self.mqtt, self.pool, self.metrics)
        self.ingest.start()
        self.fleet_state.start()
        await self.mqtt.start()

    async def stop_mqtt(self) -> None:
        """Stop consuming first (nothing more is acknowledged), then disconnect."""
        for consumer in (self.ingest, self.fleet_state):
            if consumer is not None:
                await consumer.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()

    async def close(self) -> None:
        await self.stop_mqtt()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.redis is not None:
            await self.redis.aclose()
        await self.pool.close()

    async def run_inference(self, fn: Any, *args: Any) -> Any:
        """Run face work on the enrollment worker pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def keep_partitions(self) -> None:
        while True:
            await asyncio.sleep(PARTITION_EVERY_S)
            try:
                await anyio.to_thread.run_sync(self.ensure_partitions)
            except psycopg.Error as err:  # retried at the next period; the default partition takes events
                log.warning("event_partitions_failed", extra={"error": str(err)})

    def ensure_partitions(self) -> None:
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            created = ensure_event_partitions(conn, datetime.now(UTC))
        if created:
            log.info("event_partitions_created", extra={"partitions": created})


def open_object_store(settings: CentralSettings) -> ObjectStore:
    from central.storage import S3Settings

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
    workers run in parallel)."""
    pipeline_settings = PipelineSettings(
        detector=settings.detector,
        recognizer=settings.recognizer,
        models_dir=str(settings.models_dir),
        runtime=RuntimeSettings(intra_op_threads=1),
    )
    return FacePipeline.load(pipeline_settings)
