"""The subscriptions a client remembers (sent again on every connect) and which of them a topic matches."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from common.mqtt.incoming import Handler

MAX_CACHED_TOPICS = 10_000  # topic -> matching subscriptions; cleared when full (forged topics)


@dataclass(frozen=True, slots=True)
class Subscription:
    filter: str  # what messages are matched against
    wire: str  # what is sent: the filter, or $share/<group>/<filter>
    qos: int
    manual_ack: bool
    handler: Handler


class Subscriptions:
    """Thread-safe: added to from any thread, matched on the network thread (cached per topic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_filter: dict[str, Subscription] = {}
        self._matches: dict[str, tuple[Subscription, ...]] = {}

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            self._by_filter[subscription.filter] = subscription
            self._matches = {}

    def all(self) -> list[Subscription]:
        with self._lock:
            return list(self._by_filter.values())

    def matching(self, topic: str) -> tuple[Subscription, ...]:
        """The subscriptions whose filter matches `topic` (the match is costly, so it is cached)."""
        found = self._matches.get(topic)
        if found is None:
            with self._lock:
                found = tuple(s for s in self._by_filter.values() if mqtt.topic_matches_sub(s.filter, topic))
                if len(self._matches) >= MAX_CACHED_TOPICS:
                    self._matches = {}
                self._matches[topic] = found
        return found
