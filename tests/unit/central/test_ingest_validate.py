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
