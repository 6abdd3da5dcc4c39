"""Watch rules' days and hours in the site's time zone, the retry schedule, webhook signatures and the
SSRF policy: pure functions, any instant (no waiting)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import UTC, datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from central.notify.signing import sign, verify
from central.notify.targets import TargetPolicy, TargetRefused
from central.notify.worker import next_step
from central.watch.matching import Rule, Sighting, in_window, takes

PARIS = ZoneInfo("Europe/Paris")
ALICE = uuid4()


def rule(**fields: object) -> Rule:
    base: dict[str, object] = {
        "id": uuid4(),
        "name": "r",
        "people": frozenset({ALICE}),
        "watchlists": frozenset(),
        "unknown": False,
        "sites": frozenset(),
        "cameras": frozenset(),
        "days": frozenset(range(1, 8)),
        "start_minute": 0,
        "end_minute": 1440,
        "cooldown_s": 60,
        "channels": ("webhook",),
    }
    return Rule(**{**base, **fields})  # type: ignore[arg-type]


def test_window_office_hours_in_site_zone_inside_and_outside() -> None:
    office = rule(days=frozenset({1, 2, 3, 4, 5}), start_minute=8 * 60, end_minute=18 * 60)
    # Monday 2026-12-07 07:30 UTC is 08:30 in Paris (UTC+1): inside; 17:30 UTC is 18:30: outside
    assert in_window(office, datetime(2026, 12, 7, 7, 30, tzinfo=UTC), PARIS)
    assert not in_window(office, datetime(2026, 12, 7, 17, 30, tzinfo=UTC), PARIS)
    assert not in_window(office, datetime(2026, 12, 7, 6, 59, tzinfo=UTC), PARIS)  # 07:59 local
    # Saturday 2026-12-12 at noon: not a listed day
    assert not in_window(office, datetime(2026, 12, 12, 11, 0, tzinfo=UTC), PARIS)


def test_window_overnight_belongs_to_the_day_it_started() -> None:
    nights = rule(days=frozenset({5}), start_minute=22 * 60, end_minute=6 * 60)  # Friday 22:00-06:00
    assert in_window(nights, datetime(2026, 12, 11, 22, 30, tzinfo=UTC), ZoneInfo("UTC"))  # Fri 22:30
    assert in_window(nights, datetime(2026, 12, 12, 5, 59, tzinfo=UTC), ZoneInfo("UTC"))  # Sat 05:59
    assert not in_window(nights, datetime(2026, 12, 12, 6, 0, tzinfo=UTC), ZoneInfo("UTC"))
    assert not in_window(nights, datetime(2026, 12, 11, 5, 0, tzinfo=UTC), ZoneInfo("UTC"))  # Fri 05:00


def test_window_daylight_saving_follows_the_zone() -> None:
    eight = rule(start_minute=8 * 60, end_minute=8 * 60 + 30)
    assert in_window(eight, datetime(2026, 7, 1, 6, 10, tzinfo=UTC), PARIS)  # summer: UTC+2
    assert in_window(eight, datetime(2026, 1, 7, 7, 10, tzinfo=UTC), PARIS)  # winter: UTC+1
    assert not in_window(eight, datetime(2026, 7, 1, 7, 10, tzinfo=UTC), PARIS)


def test_takes_who_and_where() -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    member = uuid4()
    listed = rule(
        people=frozenset(),
        watchlists=frozenset({uuid4()}),
        sites=frozenset({"s1"}),
        cameras=frozenset({"door"}),
    )
    assert takes(listed, Sighting(member, "s1", "door", at), frozenset({member}), PARIS)
    assert not takes(listed, Sighting(member, "s2", "door", at), frozenset({member}), PARIS)
    assert not takes(listed, Sighting(member, "s1", "yard", at), frozenset({member}), PARIS)
    assert not takes(listed, Sighting(uuid4(), "s1", "door", at), frozenset({member}), PARIS)
    assert not takes(listed, Sighting(None, "s1", "door", at), frozenset({member}), PARIS)
    assert takes(rule(unknown=True), Sighting(None, "s9", "any", at), frozenset(), PARIS)


def test_retry_schedule_then_dead() -> None:
    schedule = (1.0, 5.0)
    assert next_step(0, schedule) == ("failed", 1.0)
    assert next_step(1, schedule) == ("failed", 5.0)
    assert next_step(2, schedule) == ("dead", None)


def test_signature_matches_standard_webhooks_recipe() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = b'{"type":"facegate.watch.match"}'
    header = sign(secret, "msg_1", 1_700_000_000, body)
    expected = hmac.new(b"k" * 32, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert header == "v1," + base64.b64encode(expected).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": header}
    assert verify(secret, headers, body, now=1_700_000_100)
    assert not verify(secret, headers, body + b" ", now=1_700_000_100)  # body changed
    assert not verify(secret, headers, body, now=1_700_000_000 + 301)  # too old: a replay


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://localhost:8080/hook",
        "http://0.0.0.0/",
    ],
)
def test_target_private_refused_unless_allowed(url: str) -> None:
    with pytest.raises(TargetRefused, match="private, loopback or link-local"):
        asyncio.run(TargetPolicy(()).check(url))


def test_target_allowed_network_and_public_address_pass() -> None:
    policy = TargetPolicy(["127.0.0.0/8"])
    target = asyncio.run(policy.resolve("http://127.0.0.1:9000/in?x=1"))
    assert (target.address, target.port, target.path) == ("127.0.0.1", 9000, "/in?x=1")
    asyncio.run(TargetPolicy(()).check("https://93.184.215.14/hook"))
    with pytest.raises(TargetRefused, match="user name or password"):
        asyncio.run(policy.check("http://u:p@127.0.0.1/"))
    with pytest.raises(TargetRefused, match="http:// or https://"):
        asyncio.run(policy.check("ftp://127.0.0.1/"))
