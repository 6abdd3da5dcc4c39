"""Central auth: rate limiting, in Redis and in process, with the same semantics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
import redis

from central.auth import (
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from devtools.services import RedisFactory, RedisService

NOW = 1_700_000_000.0
SECRET = "test-secret-key-that-is-long-enough-0123456789"

# --- rate limiting ------------------------------------------------------------------------------------

MakeLimiter = Callable[[float, int], RateLimiter]


@pytest.fixture(params=["local", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> MakeLimiter:
    if request.param == "local":
        return LocalRateLimiter
    service: RedisService = request.getfixturevalue("redis_db")

    def make(rate: float, burst: int) -> RateLimiter:
        return RedisRateLimiter.from_url(service.url, rate, burst, key_prefix=service.key_prefix + "rl:")

    return make


def test_rate_limit_burst_then_refused_with_retry_after(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(2.0, 3)
    decisions = [limiter.hit("k", NOW) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_s == pytest.approx(0.5)
    assert decisions[0].retry_after_s == 0.0


def test_rate_limit_give_back_returns_a_token_never_above_burst(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(0.001, 2)
    assert [limiter.hit("k", NOW).allowed for _ in range(3)] == [True, True, False]
    limiter.give_back("k", NOW)
    assert limiter.hit("k", NOW).allowed
    for _ in range(5):
        limiter.give_back("k", NOW)
    assert [limiter.hit("k", NOW).allowed for _ in range(3)] == [True, True, False]


def test_rate_limit_refills_after_time(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(1.0, 2)
    assert [limiter.hit("k", NOW).allowed for _ in range(3)] == [True, True, False]
    half = limiter.hit("k", NOW + 0.5)
    assert not half.allowed and half.retry_after_s == pytest.approx(0.5)
    assert limiter.hit("k", NOW + 1.0).allowed
    assert not limiter.hit("k", NOW + 1.0).allowed
    full = limiter.hit("k", NOW + 100.0)  # refill is capped at the burst
    assert full.allowed and full.remaining == 1


def test_rate_limit_fractional_rate_retry_after(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(0.25, 1)
    assert limiter.hit("k", NOW).allowed
    assert limiter.hit("k", NOW + 1.0).retry_after_s == pytest.approx(3.0)
    assert limiter.hit("k", NOW + 4.0).allowed


def test_rate_limit_separate_keys_are_independent(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(1.0, 1)
    assert limiter.hit("a", NOW).allowed
    assert not limiter.hit("a", NOW).allowed
    assert limiter.hit("b", NOW).allowed


def test_rate_limit_clock_going_back_does_not_refill(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(1.0, 1)
    assert limiter.hit("k", NOW).allowed
    assert not limiter.hit("k", NOW - 50.0).allowed
    assert limiter.hit("k", NOW + 1.0).allowed


def test_rate_limit_redis_bucket_expires(redis_db: RedisService) -> None:
    limiter = RedisRateLimiter.from_url(redis_db.url, 10.0, 5, key_prefix=redis_db.key_prefix + "rl:")
    limiter.hit("k", NOW)
    client = redis.Redis.from_url(redis_db.url)
    ttl_ms = client.pttl(redis_db.key_prefix + "rl:k")
    client.close()
    assert 0 < ttl_ms <= 1100  # one token to refill at 10/s: 100 ms, plus the 1 s margin


def test_local_rate_limit_is_thread_safe() -> None:
    limiter = LocalRateLimiter(1.0, 100)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            ok = limiter.hit("k", NOW).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100


def test_local_rate_limit_forgets_full_buckets_past_max_keys() -> None:
    limiter = LocalRateLimiter(1.0, 1, max_keys=10)
    for i in range(10):
        limiter.hit(f"k{i}", NOW)
    assert not limiter.hit("k0", NOW).allowed
    limiter.hit("new", NOW + 5.0)  # 11 buckets: the full ones (all older ones) are dropped
    assert len(limiter) == 1


def test_rate_limit_redis_down_falls_back_to_local_and_recovers(
    redis_factory: RedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    instance = redis_factory()
    limiter = RedisRateLimiter.from_url(instance.endpoint.url, 1.0, 2, outage_retry_s=0.0)
    assert limiter.hit("k", NOW).remaining == 1  # from Redis
    instance.stop()
    with caplog.at_level(logging.INFO, logger="central.auth.ratelimit"):
        fallback = [limiter.hit("k", NOW) for _ in range(3)]  # a fresh local bucket
        assert [d.allowed for d in fallback] == [True, True, False]
        assert limiter.degraded
        instance.start()
        assert limiter.hit("other", NOW).allowed
        assert not limiter.degraded
    events = [r.getMessage() for r in caplog.records]
    assert events.count("ratelimit_redis_unavailable") == 1
    assert events.count("ratelimit_redis_recovered") == 1
