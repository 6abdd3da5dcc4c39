"""Checking event messages (central/ingest/validate.py): what is accepted, and the dead-letter reason of
what is not. Pure functions over real payloads; no services."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from central.ingest.validate import (
    MALFORMED,
    TOPIC_MISMATCH,
    UNKNOWN_EDGE,
    Accepted,
    Checker,
    IngestEvent,
    Rejected,
    unknown,
)
from common.messages import Event, encode
from common.mqtt.incoming import Incoming
from tests.support.ingest_rig import make_event

SITE, EDGE = "s1", "e1"
TOPIC = f"facegate/v1/{SITE}/{EDGE}/events"


def message(payload: bytes, topic: str = TOPIC) -> Incoming:
    return Incoming(topic, payload, 1, 1, False, False, 1)


def payload(**fields: Any) -> bytes:
    """An event's JSON with `fields` replaced (None removes the field)."""
    data = msgspec.json.decode(encode(make_event(SITE, EDGE)))
    for name, value in fields.items():
        if value is None:
            data.pop(name)
        else:
            data[name] = value
    return msgspec.json.encode(data)


def test_validate_ingest_event_has_every_field_of_the_wire_event() -> None:
    assert set(IngestEvent.__struct_fields__) == set(Event.__struct_fields__) - {"crop_key"}


def test_validate_valid_event_accepted_with_typed_values() -> None:
    event = make_event(SITE, EDGE, person_id=str(uuid.uuid4()), kind="recognized")
    result = Checker().check(message(encode(event)))
    assert isinstance(result, Accepted)
    assert result.event.id == uuid.UUID(event.id)
    assert result.event.person_id == uuid.UUID(str(event.person_id))
    assert result.event.ts == event.ts


def test_validate_newer_minor_schema_accepted() -> None:
    assert isinstance(Checker().check(message(payload(schema="facegate.event/1.3"))), Accepted)


@pytest.mark.parametrize(
    "fields",
    [
        {"schema": "facegate.event/2"},
        {"schema": "facegate.status/1"},
        {"id": "not-a-uuid"},
        {"id": None},
        {"ts": "2025-01-02T03:04:05"},  # no timezone
        {"first_seen": "2025-01-02T03:04:05"},
        {"seq": 2**63},
        {"track_id": -(2**63) - 1},
        {"gallery_version": 2**31},
        {"score": 1e39},
        {"bbox": [1.0, 2.0, 3.0, -1e39]},
        {"camera": "cam\u0000"},
        {"kind": "other"},
        {"person_id": "x"},
    ],
)
def test_validate_value_postgres_cannot_store_is_malformed(fields: dict[str, Any]) -> None:
    result = Checker().check(message(payload(**fields)))
    assert isinstance(result, Rejected)
    assert result.reason == MALFORMED


def test_validate_not_json_is_malformed() -> None:
    result = Checker().check(message(b'{"schema": "facegate.event/1", "site": 1'))
    assert isinstance(result, Rejected)
    assert result.reason == MALFORMED


def test_validate_payload_naming_another_edge_is_topic_mismatch() -> None:
    result = Checker().check(message(encode(make_event(SITE, "e2"))))
    assert isinstance(result, Rejected)
    assert result.reason == TOPIC_MISMATCH


def test_validate_status_topic_is_topic_mismatch() -> None:
    result = Checker().check(message(encode(make_event(SITE, EDGE)), f"facegate/v1/{SITE}/{EDGE}/status"))
    assert isinstance(result, Rejected)
    assert result.reason == TOPIC_MISMATCH


def test_validate_unknown_removes_events_of_unregistered_edges() -> None:
    checker = Checker()
    known = checker.check(message(encode(make_event(SITE, EDGE))))
    stranger = checker.check(message(encode(make_event(SITE, "x")), f"facegate/v1/{SITE}/x/events"))
    assert isinstance(known, Accepted) and isinstance(stranger, Accepted)
    accepted = [known, stranger]
    refused = unknown(accepted, frozenset({(SITE, EDGE)}))
    assert accepted == [known]
    assert [(r.message, r.reason) for r in refused] == [(stranger.message, UNKNOWN_EDGE)]


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"camera": "c" * 4000}, "Expected `str` of length <= 64"),
        ({"model": "m" * 129}, "Expected `str` of length <= 128"),
        ({"ts": "0001-01-01T00:30:00+01:00"}, "between the years 2000 and 2200"),
        ({"ts": "2999-01-01T00:00:00Z"}, "between the years 2000 and 2200"),
        ({"first_seen": "1970-01-01T00:00:00Z"}, "between the years 2000 and 2200"),
    ],
)
def test_validate_field_beyond_its_limit_malformed_with_its_event_id(
    fields: dict[str, Any], why: str
) -> None:
    """Guards issue 13 findings 1 and 2: a 4,000-character camera made PostgreSQL refuse the row
    (ProgramLimitExceeded, retried forever) and a year-1 `ts` raised OverflowError later; both are now
    refused when decoding, and the dead letter names the event id so the edge can be told."""
    data = payload(**fields)
    result = Checker().check(message(data))
    assert isinstance(result, Rejected) and result.reason == MALFORMED
    assert why in result.detail
    assert result.origin == (SITE, EDGE)
    assert result.event_id == msgspec.json.decode(data)["id"]


def test_validate_deep_nesting_malformed_without_recursion_error() -> None:
    """Guards issue 13 finding 2: an unknown field nested 100,000 deep raised RecursionError out of the
    check, leaving the whole batch unacknowledged."""
    base = payload()
    deep = base[:-1] + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    result = Checker().check(message(deep))
    assert isinstance(result, Rejected) and result.reason == MALFORMED
    assert "more than 8 levels deep" in result.detail
    assert result.event_id == msgspec.json.decode(base)["id"]


def test_validate_garbage_after_an_id_rejected_with_that_id() -> None:
    result = Checker().check(message(b'{"id": "0190-abc", "schema": "facegate.event/1", "site": [[[{'))
    assert isinstance(result, Rejected) and result.reason == MALFORMED
    assert result.event_id == "0190-abc"


def test_validate_garbage_without_id_rejected_without_event_id() -> None:
    result = Checker().check(message(b"\x00\xff not json"))
    assert isinstance(result, Rejected) and result.reason == MALFORMED
    assert result.event_id is None
