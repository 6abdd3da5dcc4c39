"""Webhook signatures in the Standard Webhooks style (https://www.standardwebhooks.com/), which Svix and
others send and verify:

    webhook-id: <delivery id>            the same on every retry: receivers dedup on it
    webhook-timestamp: <unix seconds>    of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

`key` is the base64 after `whsec_` in the rule's secret, decoded. A receiver recomputes the HMAC over the
raw body it got, compares in constant time, and refuses a timestamp more than 5 minutes away from its
clock (replays). `verify` is that recipe (docs/notifications.md shows it standalone).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"
TOLERANCE_S = 300


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    """Whether `body` with these headers (lower-case names) was signed with `secret` within 5 minutes
    of `now`."""
    try:
        delivery_id, timestamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_S:
        return False
    expected = sign(secret, delivery_id, timestamp, body)
    return any(hmac.compare_digest(expected, s) for s in signatures)
