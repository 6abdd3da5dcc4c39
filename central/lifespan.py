"""The composition root: the lifespan that opens the resources, builds one service per domain, puts them
where handlers get them, and starts and stops every worker.

Start-up (`central_lifespan(settings, metrics)`, run by Litestar before the first request):
1. open the resources (central/runtime.py: migrations, buckets, models, pool, Redis, threads);
2. make the MQTT client when FACEGATE_MQTT_URL is set (it connects in step 3);
3. build the services (`build_services`), each given only what its domain needs, and store them in
   `app.state` under their dependency names (`Services`); central/app.py provides each to the
   handlers that declare it (`people: NamedDependency[PeopleService]`), the guard reads `auth`;
4. start the workers in this order: event-partition upkeep, enrollment job workers and their lease
   sweep, the pending-deletions sweep, the unknown-face clustering, the live-event listener (with
   Redis), the notification delivery worker, the retention runner, MQTT (ingest with the notification
   outbox hook, fleet state, the dead-letter sweep, then the client connects), the fleet gauges, gallery
   distribution (with MQTT).

Shutdown runs the workers' stops in the reverse order (distribution first; the MQTT consumers stop
before the client disconnects, so nothing more is acknowledged), then closes the resources. No other
module starts a worker: a new one is a class or coroutine in its package, started in `start_workers`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar

from central.auth.authenticator import Authenticator
from central.auth.authlimit import AuthLimiter
from central.auth.ratelimit import make_rate_limiter
from central.auth.service import AuthService
from central.cleanup.service import CleanupService
from central.clusters.service import ClusterService
from central.clusters.worker import ClusterWorker
from central.console.service import ConsoleService
from central.corrections.service import CorrectionService
from central.db.partitions import keep_event_partitions
from central.distribution.distributor import Distributor, distribution_settings
from central.distribution.service import DistributionService
from central.distribution.snapshot_policy import SnapshotPolicy
from central.enrollment.jobs_queue import job_queue
from central.enrollment.service import EnrollmentService
from central.enrollment.settings import enrollment_settings
from central.enrollment.workers import JobWorkers
from central.events.service import EventService
from central.fleet.service import FleetService
from central.galleries.service import GalleryService
from central.http.operations import Operations
from central.ingest.consumer import Ingest, ingest_settings
from central.ingest.dead_letters import DeadLetterSweeper, dead_letter_rules
from central.ingest.fleet_state import FleetState
from central.live.service import LiveService
from central.metrics import Metrics
from central.models.service import ModelService
from central.monitoring.refresher import FleetRefresher
from central.mqtt.options import mqtt_settings
from central.notify.email import EmailSender, SmtpSettings
from central.notify.enqueue import Enqueuer
from central.notify.service import DeliveryService
from central.notify.targets import TargetPolicy
from central.notify.webhook import WebhookSender, WebhookSettings
from central.notify.worker import DeliveryWorker, WorkerSettings
from central.people.service import PeopleService
from central.retention.expiry import EventExpiry
from central.retention.runner import RetentionRunner, RetentionSettings
from central.retention.service import RetentionService
from central.runtime import Runtime, close_runtime, open_runtime
from central.search.service import SearchService
from central.settings import CentralSettings
from central.watch.service import WatchService
from common.mqtt.aio import AsyncMqttClient

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10.0  # the longest one worker may take to stop at shutdown


@dataclass(frozen=True, slots=True)
class Services:
    """One service per domain. The fields of `ROUTED` are provided to handlers under their field name;
    all of them are in `app.state` under it (the guard and the tests reach them there)."""

    auth: AuthService
    people: PeopleService
    enrollment: EnrollmentService
    galleries: GalleryService
    fleet: FleetService
    events: EventService
    models: ModelService
    live: LiveService
    operations: Operations
    cleanup: CleanupService
    distribution: DistributionService
    corrections: CorrectionService
    clusters: ClusterService
    search: SearchService
    console: ConsoleService
    watch: WatchService
    deliveries: DeliveryService
    targets: TargetPolicy
    retention: RetentionService

    def by_name(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


ROUTED = (
    "auth",
    "people",
    "enrollment",
    "galleries",
    "fleet",
    "events",
    "models",
    "live",
    "operations",
    "corrections",
    "clusters",
    "search",
    "distribution",
    "console",
    "watch",
    "deliveries",
    "retention",
)
"""The services handlers receive as dependencies (central/app.py)."""


def build_services(runtime: Runtime, mqtt: AsyncMqttClient | None) -> Services:
    """Every service, wired from the resources (no I/O)."""
    settings, pool, store, metrics = runtime.settings, runtime.pool, runtime.store, runtime.metrics
    embedder = runtime.pipeline.embedder
    recognizer = embedder.model.manifest if embedder is not None else None
    auth = AuthService(
        pool,
        Authenticator(
            pool,
            settings.secret_key,
            AuthLimiter.create(
                settings.redis_url,
                settings.auth_fail_ip_per_s,
                settings.auth_fail_ip_burst,
                settings.auth_fail_key_per_s,
                settings.auth_fail_key_burst,
            ),
            cache_s=settings.key_cache_s,
        ),
        make_rate_limiter(settings.redis_url, settings.rate_limit_per_s, settings.rate_limit_burst),
        metrics,
        secret_key=settings.secret_key,
        token_ttl_s=settings.token_ttl_s,
        rate_limit_per_s=settings.rate_limit_per_s,
        rate_limit_burst=settings.rate_limit_burst,
    )
    cleanup = CleanupService(pool, store, metrics)
    galleries = GalleryService(
        pool, store, default_model=recognizer.id if recognizer else settings.recognizer, recognizer=recognizer
    )
    distribution = DistributionService(pool, mqtt)
    people = PeopleService(
        pool,
        store,
        galleries,
        distribution,
        cleanup,
        presign_ttl_s=settings.presign_ttl_s,
        sighting_threshold=runtime.pipeline.threshold,
    )
    enrollment = EnrollmentService(
        pool,
        store,
        runtime.pipeline,
        runtime.executor,
        metrics,
        enrollment_settings(settings),
        people,
        galleries,
        cleanup,
        job_queue(runtime.redis, settings.database_url),
    )
    loaded = [runtime.pipeline.detector.model.manifest, *([recognizer] if recognizer else [])]
    targets = TargetPolicy(settings.webhook_allow_nets)
    return Services(
        auth=auth,
        people=people,
        enrollment=enrollment,
        galleries=galleries,
        fleet=FleetService(pool, auth),
        events=EventService(pool, store, presign_ttl_s=settings.presign_ttl_s),
        models=ModelService(store, loaded, models_dir=settings.models_dir),
        live=LiveService(
            runtime.redis,
            settings.live_channel,
            metrics.live,
            queue_size=settings.ws_queue_size,
            ping_s=settings.ws_ping_s,
        ),
        operations=Operations(
            pool, store, runtime.redis, metrics, settings.mqtt_url, mqtt, settings.metrics_port
        ),
        cleanup=cleanup,
        distribution=distribution,
        corrections=CorrectionService(
            pool, store, people, galleries, enrollment, negatives_per_person=settings.negatives_per_person
        ),
        clusters=ClusterService(pool, store, people, enrollment, presign_ttl_s=settings.presign_ttl_s),
        search=SearchService(pool, enrollment),
        console=ConsoleService(pool, auth, ttl_s=settings.console_session_ttl_s),
        watch=WatchService(pool, targets.check),
        deliveries=DeliveryService(pool),
        targets=targets,
        retention=RetentionService(pool),
    )


def delivery_worker(runtime: Runtime, services: Services, mqtt: AsyncMqttClient | None) -> DeliveryWorker:
    """The notification sender of this replica (central/notify/worker.py)."""
    s = runtime.settings
    return DeliveryWorker(
        runtime.pool,
        runtime.store,
        WebhookSender(services.targets, WebhookSettings(s.webhook_timeout_s, s.webhook_max_response_bytes)),
        EmailSender(
            SmtpSettings(
                s.smtp_host,
                s.smtp_port,
                s.smtp_username,
                s.smtp_password,
                s.smtp_from,
                s.smtp_starttls,
                s.smtp_timeout_s,
            )
        ),
        mqtt,
        runtime.metrics.notify,
        WorkerSettings(s.notify_poll_s, s.notify_batch, s.notify_retry_s, s.notify_link_ttl_s),
    )


class Workers:
    """The tasks the lifespan started, and how to stop each worker; `stop()` stops them newest first."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []
        self._stops: list[Callable[[], Awaitable[None]]] = []

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` as a task until shutdown cancels it."""
        self.adopt([asyncio.create_task(work, name=name)])

    def adopt(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        """Tasks a worker started itself; shutdown cancels them together."""
        mine = list(tasks)
        self.tasks.extend(mine)
        self._stops.append(lambda: _cancel(mine))

    def on_stop(self, stop: Callable[[], Awaitable[None]]) -> None:
        """A worker with a stop of its own (the MQTT consumers and client)."""
        self._stops.append(lambda: _bounded(stop))

    async def stop(self) -> None:
        """Every stop runs, newest first, even when one fails (its error is raised once all have run).
        No stop takes over STOP_TIMEOUT_S (`_bounded`, `_cancel`), so a shutdown never hangs on one
        worker."""
        if not self._stops:
            return
        stop = self._stops.pop()
        try:
            await stop()
        finally:
            await self.stop()


async def _bounded(stop: Callable[[], Awaitable[None]]) -> None:
    """Run a worker's own stop for at most STOP_TIMEOUT_S; one that takes longer is abandoned, logged."""
    try:
        await asyncio.wait_for(stop(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.error("worker_stop_timed_out", extra={"timeout_s": STOP_TIMEOUT_S})


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait for them, at most STOP_TIMEOUT_S; one still running then is logged with
    where it waits (`worker_did_not_stop`) and left behind."""
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    done, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: an error while stopping was the task's own to log
    for task in pending:
        where = io.StringIO()
        task.print_stack(file=where)
        log.error("worker_did_not_stop", extra={"task": task.get_name(), "stack": where.getvalue()})


async def start_workers(
    workers: Workers, runtime: Runtime, services: Services, mqtt: AsyncMqttClient | None
) -> None:
    """Start every worker of this replica (the order is the module doc's)."""
    settings, pool, metrics = runtime.settings, runtime.pool, runtime.metrics
    workers.spawn(keep_event_partitions(settings.database_url), "event-partitions")
    workers.adopt(JobWorkers(services.enrollment, services.enrollment.queue).start())
    workers.spawn(services.cleanup.sweep_forever(), "pending-deletions")
    workers.spawn(ClusterWorker(pool, settings.cluster_threshold).run(), "unknown-clusters")
    if runtime.redis is not None:
        workers.spawn(services.live.listen_forever(), "live-events")
    notifier = delivery_worker(runtime, services, mqtt)
    workers.spawn(notifier.run_forever(), "deliveries")
    retention = RetentionSettings(settings.retention_every_s, settings.retention_batch)
    runner = RetentionRunner(pool, services.cleanup, metrics.retention, retention)
    workers.spawn(runner.run_forever(), "retention")
    if mqtt is not None:
        await start_mqtt(workers, runtime, services, mqtt, notifier)
    refresher = FleetRefresher(
        pool,
        runtime.redis,
        metrics.fleet,
        every_s=settings.fleet_refresh_s,
        offline_after_s=settings.edge_offline_after_s,
    )
    workers.spawn(refresher.refresh_forever(), "fleet-gauges")
    if mqtt is not None:
        rules = distribution_settings(settings)
        policy = SnapshotPolicy(pool, runtime.store, services.galleries, services.cleanup, rules)
        workers.adopt(Distributor(pool, mqtt, policy, rules).start())


async def start_mqtt(
    workers: Workers, runtime: Runtime, services: Services, mqtt: AsyncMqttClient, notifier: DeliveryWorker
) -> None:
    """Event ingest and fleet state on the MQTT client, which then connects in the background (a broker
    that is down is retried; docs/central-ingest.md). Ingest writes the notification outbox in its
    commit and wakes the delivery worker after it. Stopping stops consuming first (nothing more is
    acknowledged), then disconnects."""
    enqueuer = Enqueuer(runtime.settings.notify_max_age_s)
    enqueuer.on_enqueued = runtime.metrics.notify.enqueued.inc

    async def after_commit(events: list[dict[str, Any]]) -> None:
        notifier.wake()
        await services.live.publish(events)

    ingest = Ingest(
        mqtt,
        runtime.pool,
        runtime.store,
        runtime.metrics,
        ingest_settings(runtime.settings),
        on_commit=after_commit,
        in_commit=enqueuer,
        expiry=EventExpiry(runtime.metrics.retention),
    )
    services.operations.ingest = ingest.progress.health
    fleet_state = FleetState(mqtt, runtime.pool, runtime.metrics)
    workers.tasks.extend([ingest.start(), fleet_state.start()])  # each stops its own task(s) below
    sweeper = DeadLetterSweeper(runtime.pool, runtime.metrics, dead_letter_rules(runtime.settings))
    workers.spawn(sweeper.sweep_forever(), "dead-letters")

    async def stop() -> None:
        await ingest.stop()
        await fleet_state.stop()
        await mqtt.stop()

    workers.on_stop(stop)
    await mqtt.start()


def central_lifespan(
    settings: CentralSettings, metrics: Metrics
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The lifespan of one app (central/app.py): everything above, around the app's life."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, metrics)
        workers = Workers()
        try:
            mqtt = AsyncMqttClient(mqtt_settings(settings)) if settings.mqtt_url else None
            if mqtt is not None:
                metrics.mqtt_logins_refused.set_function(lambda: mqtt.logins_refused)
            services = build_services(runtime, mqtt)
            app.state.update({**services.by_name(), "runtime": runtime, "mqtt": mqtt, "workers": workers})
            await start_workers(workers, runtime, services, mqtt)
            yield
        finally:
            try:
                await workers.stop()
            finally:
                await close_runtime(runtime)

    return lifespan
