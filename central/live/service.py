"""The live service: this replica's WebSocket clients (a `LiveHub`) and the fan-out of ingested events to
every replica's clients.

`publish(events)` is called by ingest after a batch commits. With Redis (FACEGATE_REDIS_URL) it
PUBLISHes the whole batch as one message (a JSON array of event objects) on the channel `channel`
(FACEGATE_LIVE_CHANNEL, default `facegate:events`); every replica runs `listen_forever` (a worker
started by central/lifespan.py), which delivers each batch to its own clients. Without Redis, or when
the publish fails, the batch is delivered to this replica's clients only. Pub/sub is at most once: a
replica that is not subscribed at that moment (restarting, Redis down) misses the batch; clients catch
up with `GET /api/v1/events`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from central.live.hub import Client, LiveHub, live_events
from central.metrics import LiveMetrics
from central.principal import Principal

log = logging.getLogger("central.live")

POLL_S = 1.0
"""How long one wait for a pub/sub message lasts (shorter than the Redis client's socket timeout)."""
RETRY_S = 1.0
"""Pause before subscribing again after Redis failed."""


def encode_batch(events: Sequence[Mapping[str, Any]]) -> bytes:
    """The published form of a batch: a JSON array of the events (UUIDs and datetimes as strings)."""
    return msgspec.json.encode([dict(event) for event in events])


class LiveService:
    """The live events of one app: clients connect and disconnect (central/live/routes.py), ingest
    publishes, a worker listens. `ping_s`: how long a connection may stay silent before it gets a ping."""

    def __init__(  # one argument per thing the fan-out needs, wired by central/lifespan.py
        self,
        redis: aioredis.Redis | None,
        channel: str,
        metrics: LiveMetrics,
        *,
        queue_size: int,
        ping_s: float,
    ) -> None:
        self.redis = redis
        self.channel = channel
        self.metrics = metrics
        self.hub = LiveHub(queue_size, metrics)
        self.ping_s = ping_s

    def connect(self, principal: Principal, sites: Iterable[str], person: str | None) -> Client:
        """A new client of this replica, receiving from now on the events it may see and asked for."""
        return self.hub.add(principal, sites, person)

    def disconnect(self, client: Client) -> None:
        self.hub.remove(client)

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Send committed events (EventRead-like mappings) to the WebSocket clients of every replica."""
        if not events:
            return
        payload = encode_batch(events)
        if self.redis is not None:
            try:
                await self.redis.publish(self.channel, payload)
            except (RedisError, OSError) as err:
                self.metrics.publish_failures.inc()
                log.warning("live_publish_failed", extra={"error": str(err), "events": len(events)})
            else:
                return  # this replica's own subscriber delivers it, like every other replica's
        self.hub.deliver(live_events(payload))

    async def listen_forever(self) -> None:
        """Deliver the batches published on the live channel to this replica's clients; resubscribe after
        Redis failures. Only with Redis."""
        assert self.redis is not None
        while True:
            try:
                await self._listen(self.redis)
            except (RedisError, OSError) as err:
                log.warning("live_subscription_lost", extra={"error": str(err)})
            finally:
                self.metrics.subscribed.set(0)
            await asyncio.sleep(RETRY_S)

    async def _listen(self, redis: aioredis.Redis) -> None:
        async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            self.metrics.subscribed.set(1)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    self.hub.deliver(live_events(message["data"]))
                except msgspec.DecodeError as err:
                    log.warning("live_batch_malformed", extra={"error": str(err)})
