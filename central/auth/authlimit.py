"""Failed authentications limited per client address and per credential, before the expensive check runs.

Verifying an API key costs ~40 ms of PBKDF2, so a flood of wrong secrets on a known key prefix could
burn central's CPU without ever holding a valid key. `AuthLimiter` keeps two token buckets of *failures*
(in Redis when FACEGATE_REDIS_URL is set, so they hold across replicas; in process otherwise):

- per client address: FACEGATE_AUTH_FAIL_IP_BURST (30) failures, refilled at FACEGATE_AUTH_FAIL_IP_PER_S
  (0.5 per second);
- per credential (an API key prefix, or a user name for a sign-in form): FACEGATE_AUTH_FAIL_KEY_BURST (10)
  failures, refilled at FACEGATE_AUTH_FAIL_KEY_PER_S (0.2 per second).

Use: `check(ip, subject)` before the expensive verification takes one token from each bucket, so that
concurrent attempts count too, and raises TooManyRequests (429 with Retry-After, code `auth_throttled`)
when either bucket is empty, without verifying anything; `succeeded(ip, subject)` after a verification
that passed gives both tokens back. A refusal is also remembered in process until the allowance can be
back, and `refuse_known(ip, subject)` (no I/O) answers from that memory first, so a flood costs no Redis
round trip per request. A failure keeps its tokens: only failures use up the allowance, and a
client whose credential is right is never slowed down by its own requests. Sign-in forms (the console's)
reuse the same object with a user name as `subject`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from central.auth.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from central.errors import TooManyRequests

THROTTLED_CODE = "auth_throttled"
_MAX_BLOCKED = 100_000


class AuthLimiter:
    """Two buckets of failed authentications: one per client address, one per credential."""

    def __init__(
        self, by_ip: RateLimiter, by_subject: RateLimiter, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.by_ip = by_ip
        self.by_subject = by_subject
        self.clock = clock
        self._blocked: dict[str, float] = {}  # "key:<subject>" / "ip:<address>" -> refused until

    @classmethod
    def create(
        cls, redis_url: str | None, ip_per_s: float, ip_burst: int, key_per_s: float, key_burst: int
    ) -> AuthLimiter:
        """Redis-backed buckets (`facegate:authfail:`) when `redis_url` is set, in-process otherwise."""
        if redis_url:
            prefix = "facegate:authfail:"
            return cls(
                RedisRateLimiter.from_url(redis_url, ip_per_s, ip_burst, key_prefix=prefix + "ip:"),
                RedisRateLimiter.from_url(redis_url, key_per_s, key_burst, key_prefix=prefix + "key:"),
            )
        return cls(LocalRateLimiter(ip_per_s, ip_burst), LocalRateLimiter(key_per_s, key_burst))

    def refuse_known(self, ip: str | None, subject: str) -> None:
        """TooManyRequests, without any I/O, while an earlier `check` on this replica found `ip` or
        `subject` out of attempts and their allowance cannot be back yet. Cheap: call it on the event
        loop before `check`, so that a flood is turned away without a Redis round trip per request."""
        now = self.clock()
        for kind, name in (("key", subject), ("ip", ip)):
            until = self._blocked.get(f"{kind}:{name}") if name else None
            if until is not None and now < until:
                raise _refusal(kind, until - now)

    def check(self, ip: str | None, subject: str) -> None:
        """Take one attempt from `ip`'s and `subject`'s allowance; TooManyRequests when either is used up.
        Blocking (Redis): call it off the event loop."""
        now = self.clock()
        by_subject = self.by_subject.hit(subject, now)
        by_ip = self.by_ip.hit(ip, now) if ip else None
        if by_subject.allowed and (by_ip is None or by_ip.allowed):
            return
        if by_subject.allowed:  # refused for the address only: this credential was not tried
            self.by_subject.give_back(subject, now)
        if by_ip is not None and by_ip.allowed and ip:
            self.by_ip.give_back(ip, now)
        if not by_subject.allowed:
            kind, name, wait = "key", subject, by_subject.retry_after_s
        else:
            assert by_ip is not None and ip
            kind, name, wait = "ip", ip, by_ip.retry_after_s
        if len(self._blocked) >= _MAX_BLOCKED:
            self._blocked.clear()
        self._blocked[f"{kind}:{name}"] = now + wait
        raise _refusal(kind, wait)

    def forget(self) -> None:
        """Drop the refusals remembered in process (after the buckets were cleared in Redis)."""
        self._blocked.clear()

    def succeeded(self, ip: str | None, subject: str) -> None:
        """Give back what `check` took: the credential was right. Blocking (Redis)."""
        now = self.clock()
        self.by_subject.give_back(subject, now)
        if ip:
            self.by_ip.give_back(ip, now)


def _refusal(kind: str, wait: float) -> TooManyRequests:
    if kind == "key":
        message = (
            f"too many failed authentications for this credential; retry in {math.ceil(wait)} s. "
            "If these attempts are not yours, revoke the key and create a new one"
        )
    else:
        message = (
            f"too many failed authentications from this address; retry in {math.ceil(wait)} s "
            "with a valid credential"
        )
    return TooManyRequests(message, wait, code=THROTTLED_CODE)
