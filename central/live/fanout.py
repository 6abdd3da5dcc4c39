"""Fan-out of ingested events to every replica's WebSocket clients.

`publish_events(runtime, events)` is called by ingest after a batch commits. With Redis
(FACEGATE_REDIS_URL) it PUBLISHes the whole batch as one message (a JSON array of event objects)
on the channel `settings.live_channel` (default `facegate:events`); every replica runs
`listen_forever`, which delivers each batch to its own clients. Without Redis, or when the publish
fails, the batch is delivered to this replica's clients only. Pub/sub is at most once: a replica
that is not subscribed at that moment (restarting, Redis down) misses the batch; clients catch up
with `GET /api/v1/events`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from redis.exceptions import RedisError

from central.live.hub import LiveHub, live_events
from central.runtime import Runtime

log = logging.getLogger("central.live")

POLL_S = 1.0
"""How long one wait for a pub/sub message lasts (shorter than the Redis client's socket timeout)."""
RETRY_S = 1.0
"""Pause before subscribing again after Redis failed."""


def encode_batch(events: Sequence[Mapping[str, Any]]) -> bytes:
    """The published form of a batch: a JSON array of the events (UUIDs and datetimes as strings)."""
    return msgspec.json.encode([dict(event) for event in events])


async def publish_events(runtime: Runtime, events: Sequence[Mapping[str, Any]]) -> None:
    """Send committed events (EventRead-like mappings) to the WebSocket clients of every replica."""
    if not events:
        return
    payload = encode_batch(events)
    if runtime.redis is not None:
        try:
            await runtime.redis.publish(runtime.settings.live_channel, payload)
        except (RedisError, OSError) as err:
            runtime.metrics.live.publish_failures.inc()
            log.warning("live_publish_failed", extra={"error": str(err), "events": len(events)})
        else:
            return  # this replica's own subscriber delivers it, like every other replica's
    if runtime.live is not None:  # None only while the replica is still starting
        runtime.live.deliver(live_events(payload))


async def listen_forever(runtime: Runtime, hub: LiveHub) -> None:
    """Deliver the batches published on the live channel to `hub`; resubscribe after Redis failures."""
    assert runtime.redis is not None
    while True:
        try:
            await _listen(runtime, hub)
        except (RedisError, OSError) as err:
            log.warning("live_subscription_lost", extra={"error": str(err)})
        finally:
            runtime.metrics.live.subscribed.set(0)
        await asyncio.sleep(RETRY_S)


async def _listen(runtime: Runtime, hub: LiveHub) -> None:
    assert runtime.redis is not None
    async with runtime.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(runtime.settings.live_channel)
        runtime.metrics.live.subscribed.set(1)
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
            if message is None or message.get("type") != "message":
                continue
            try:
                hub.deliver(live_events(message["data"]))
            except msgspec.DecodeError as err:
                log.warning("live_batch_malformed", extra={"error": str(err)})


def start_live(runtime: Runtime) -> list[asyncio.Task[None]]:
    """Create the replica's hub (runtime.live) and, with Redis, its subscriber task."""
    runtime.live = LiveHub(runtime.settings.ws_queue_size, runtime.metrics.live)
    if runtime.redis is None:
        return []
    return [asyncio.create_task(listen_forever(runtime, runtime.live), name="live-events")]
