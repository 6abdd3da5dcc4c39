"""Token-bucket rate limiting per key: in Redis (shared by every replica) or in process, same semantics.

A bucket holds at most `burst` tokens and gains `rate` tokens per second; each hit takes one token or is
refused with the seconds until one is there; `give_back` returns one (never above `burst`), so a bucket
can count unconfirmed attempts (central/auth/authlimit.py). A bucket not seen before is full. Time is
the caller's `now` (wall-clock seconds, time.time(); replicas must be NTP-synced); a `now` earlier than
the bucket's last update is treated as no time passing.

Redis outage: RedisRateLimiter falls back to its in-process limiter (logging `ratelimit_redis_unavailable`
once per outage and `ratelimit_redis_recovered` when Redis answers again), so the API keeps serving with
per-replica limits instead of failing every request. It retries Redis after `outage_retry_s`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from central.auth.errors import RateLimitError

log = logging.getLogger(__name__)

_LUA = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local retry = 0
if cost < 0 then
  tokens = math.min(burst, tokens - cost)
  allowed = 1
elseif tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, string.format('%.17g', tokens), string.format('%.17g', retry)}
"""
"""Mirrors _take(). Floats travel as %.17g strings: Redis would truncate Lua numbers to integers."""


@dataclass(frozen=True, slots=True)
class Decision:
    """allowed: serve the request; retry_after_s: seconds until the next token (0 when allowed);
    remaining: whole tokens left after this hit (for X-RateLimit-Remaining)."""

    allowed: bool
    retry_after_s: float
    remaining: int


class RateLimiter(Protocol):
    def hit(self, key: str, now: float) -> Decision: ...

    def give_back(self, key: str, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class _Bucket:
    tokens: float
    ts: float


def _check(rate: float, burst: int) -> None:
    if not rate > 0 or burst < 1:
        raise ValueError(f"rate must be > 0 per second and burst >= 1, got rate={rate}, burst={burst}")


def _take(
    bucket: _Bucket | None, now: float, rate: float, burst: int, cost: int = 1
) -> tuple[_Bucket, Decision]:
    tokens, ts = (float(burst), now) if bucket is None else (bucket.tokens, bucket.ts)
    if now > ts:
        tokens, ts = min(float(burst), tokens + (now - ts) * rate), now
    if cost < 0:  # a token given back
        tokens = min(float(burst), tokens - cost)
        return _Bucket(tokens, ts), Decision(True, 0.0, math.floor(tokens))
    if tokens >= 1:
        tokens -= 1
        return _Bucket(tokens, ts), Decision(True, 0.0, math.floor(tokens))
    return _Bucket(tokens, ts), Decision(False, (1 - tokens) / rate, 0)


class LocalRateLimiter:
    """In-process buckets behind a lock; at most `max_keys` buckets (full ones are dropped first)."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> Decision:
        return self._apply(key, now, 1)

    def give_back(self, key: str, now: float) -> None:
        self._apply(key, now, -1)

    def _apply(self, key: str, now: float, cost: int) -> Decision:
        with self._lock:
            bucket, decision = _take(self._buckets.pop(key, None), now, self.rate, self.burst, cost)
            self._buckets[key] = bucket  # re-inserted last: dict order is least recently hit first
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return decision

    def __len__(self) -> int:
        """Number of buckets held."""
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        """Forget full buckets (a forgotten bucket is full again, so nothing changes); then the oldest."""
        refill_s = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.ts >= refill_s]:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]


class RedisRateLimiter:
    """Buckets in Redis hashes `<key_prefix><key>`, updated atomically by one Lua script; they expire
    once they would be full again. Falls back to `fallback` (a LocalRateLimiter) while Redis is down."""

    def __init__(
        self,
        client: redis.Redis,
        rate: float,
        burst: int,
        *,
        key_prefix: str = "facegate:ratelimit:",
        fallback: RateLimiter | None = None,
        outage_retry_s: float = 5.0,
    ) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = burst
        self.key_prefix = key_prefix
        self.fallback = fallback if fallback is not None else LocalRateLimiter(rate, burst)
        self.outage_retry_s = outage_retry_s
        self._client = client
        self._script = client.register_script(_LUA)  # no I/O: EVALSHA, loaded on first NOSCRIPT
        self._lock = threading.Lock()
        self._down_until: float | None = None  # time.monotonic() before which Redis is not tried

    @classmethod
    def from_url(
        cls,
        url: str,
        rate: float,
        burst: int,
        *,
        timeout_s: float = 0.25,
        key_prefix: str = "facegate:ratelimit:",
        outage_retry_s: float = 5.0,
    ) -> RedisRateLimiter:
        """A limiter on a new client with short timeouts and no retries: an outage must not stall requests."""
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )
        return cls(client, rate, burst, key_prefix=key_prefix, outage_retry_s=outage_retry_s)

    @property
    def degraded(self) -> bool:
        """Whether the last attempt found Redis unreachable (hits go to the local fallback)."""
        return self._down_until is not None

    def hit(self, key: str, now: float) -> Decision:
        return self._apply(key, now, 1)

    def give_back(self, key: str, now: float) -> None:
        self._apply(key, now, -1)

    def _apply(self, key: str, now: float, cost: int) -> Decision:
        down_until = self._down_until
        if down_until is not None and time.monotonic() < down_until:
            return self._local(key, now, cost)
        try:
            result = self._script(
                keys=[self.key_prefix + key], args=[repr(now), repr(float(self.rate)), self.burst, cost]
            )
        except (redis.ConnectionError, redis.TimeoutError) as err:
            self._mark_down(err)
            return self._local(key, now, cost)
        except redis.RedisError as err:
            raise RateLimitError(f"Redis refused the rate-limit script: {err}") from err
        if down_until is not None:
            self._mark_up()
        allowed, tokens, retry = result
        return Decision(bool(int(allowed)), float(retry), math.floor(float(tokens)))

    def _local(self, key: str, now: float, cost: int) -> Decision:
        if cost < 0:
            self.fallback.give_back(key, now)
            return Decision(True, 0.0, 0)
        return self.fallback.hit(key, now)

    def _mark_down(self, err: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + self.outage_retry_s
        if first:
            log.warning(
                "ratelimit_redis_unavailable",
                extra={"error": str(err), "fallback": "local", "retry_s": self.outage_retry_s},
            )

    def _mark_up(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            log.info("ratelimit_redis_recovered")


def make_rate_limiter(redis_url: str | None, rate: float, burst: int) -> RateLimiter:
    """Redis-backed when FACEGATE_REDIS_URL is set, in-process otherwise."""
    if redis_url:
        return RedisRateLimiter.from_url(redis_url, rate, burst)
    return LocalRateLimiter(rate, burst)
