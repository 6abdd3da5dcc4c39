"""The small pieces both sides share (common/): backoff, keyset cursors, base64 forms, deliveries."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from uuid import UUID

import pytest

from common.backoff import Backoff
from common.cursor import (
    CursorError,
    decode_cursor,
    decode_time_id_cursor,
    encode_cursor,
    encode_time_id_cursor,
)
from common.encoding import EncodingError, b64, b64_decode, b64url, b64url_decode
from common.mqtt.delivery import Delivery
from common.mqtt.errors import NotConnectedError


def test_backoff_without_jitter_doubles_from_low_up_to_high_and_resets() -> None:
    backoff = Backoff(1.0, 8.0, jitter=False)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next() == 1.0


def test_backoff_with_jitter_stays_within_half_and_full_of_each_step() -> None:
    backoff = Backoff(0.5, 4.0, factor=3.0, rng=random.Random(1))
    caps = [0.5, 1.5, 4.0, 4.0]
    assert all(cap / 2 <= backoff.next() <= cap for cap in caps)


def test_backoff_refuses_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        Backoff(5.0, 1.0)


def test_cursor_round_trips_and_refuses_what_it_did_not_make() -> None:
    assert decode_cursor(encode_cursor("site-a", "edge/1"), 2) == ("site-a", "edge/1")
    ts, row = datetime(2026, 12, 6, 20, 0, 0, 123456, tzinfo=UTC), UUID(int=7)
    assert decode_time_id_cursor(encode_time_id_cursor(ts, row)) == (ts, row)
    for bad in ("", "not*base64", b64url(b'{"a": 1}'), encode_cursor("one"), "x" * 600):
        with pytest.raises(CursorError):
            decode_time_id_cursor(bad)
    with pytest.raises(CursorError):
        decode_time_id_cursor(encode_cursor("2026-12-06T20:00:00", str(row)))  # no timezone


def test_base64_forms_are_the_standard_and_url_safe_ones() -> None:
    data = bytes(range(250, 256)) + b"\xfb\xff"
    assert b64(data) == "+vv8/f7/+/8="
    assert b64url(data) == "-vv8_f7_-_8"
    assert b64_decode(b64(data)) == data and b64url_decode(b64url(data)) == data
    with pytest.raises(EncodingError):
        b64_decode("+vv8/f7/+/8")  # standard form needs its padding
    with pytest.raises(EncodingError):
        b64_decode("a b")


def test_delivery_resolves_once_and_wakes_a_waiting_thread() -> None:
    delivery = Delivery()
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(delivery.wait(5)))
    waiter.start()
    delivery.resolve()
    delivery.resolve(NotConnectedError("too late: already acknowledged"))
    waiter.join(5)
    assert waited == [True] and delivery.acknowledged and delivery.error is None
    failed = Delivery()
    failed.resolve(NotConnectedError("connection lost"))
    assert not failed.wait(0) and isinstance(failed.error, NotConnectedError) and not failed.acknowledged
    assert not Delivery().wait(0.01)  # nothing yet: times out
