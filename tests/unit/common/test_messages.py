"""The MQTT contract: topics, ids and versioned message schemas."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from common.ids import uuid7
from common.messages import (
    Command,
    Event,
    GalleryChange,
    Heartbeat,
    MessageError,
    Receipt,
    RejectedEvent,
    Snapshot,
    SnapshotTemplate,
    Status,
    Template,
    decode,
    decode_snapshot,
    embedding_bytes,
    encode,
    encode_snapshot,
)
from common.topics import TopicError, edge_topic, gallery_topic, parse_topic


def _event(**overrides: object) -> Event:
    fields: dict[str, object] = dict(
        site="s1",
        edge="e1",
        camera="door",
        seq=1,
        track_id=7,
        kind="recognized",
        person_id="p1",
        score=0.71,
        threshold=0.363,
        quality=0.9,
        bbox=(1.0, 2.0, 30.0, 40.0),
        model="sface-2021dec",
    )
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def test_topics_build_and_parse_round_trip() -> None:
    topic = edge_topic("branch-12", "edge_a", "events")
    assert topic == "facegate/v1/branch-12/edge_a/events"
    parsed = parse_topic(topic)
    assert (parsed.kind, parsed.site, parsed.edge) == ("events", "branch-12", "edge_a")
    assert parse_topic(gallery_topic("staff", "changes")).gallery == "staff"


@pytest.mark.parametrize(
    "bad", ["a/b", "facegate/v1/s/e/unknown", "facegate/v2/s/e/events", "facegate/v1/s/+/events"]
)
def test_parse_topic_invalid_raises(bad: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(bad)


@pytest.mark.parametrize("segment", ["", "a/b", "+", "#", "x" * 65, "sp ace"])
def test_edge_topic_bad_segment_raises(segment: str) -> None:
    with pytest.raises(TopicError):
        edge_topic(segment, "e", "events")


def test_uuid7_unique_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(i[14] == "7" for i in ids)


def test_event_round_trip_with_crop() -> None:
    event = _event(crop_jpeg=b"\xff\xd8jpeg")
    assert decode(encode(event), Event) == event


def test_decode_tolerates_unknown_fields_and_minor_version() -> None:
    payload = (
        b'{"schema":"facegate.receipt/1.3","id":"x","ts":"2026-01-01T00:00:00Z","event_ids":["a"],"new":1}'
    )
    assert decode(payload, Receipt).event_ids == ["a"]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"schema":"facegate.receipt/1"}',
        b'{"schema":"facegate.receipt/2","event_ids":[]}',
        b'{"schema":"facegate.event/1","event_ids":[]}',
        b'{"schema":"facegate.receipt/1","event_ids":"a"}',
    ],
)
def test_decode_malformed_raises_message_error(payload: bytes) -> None:
    with pytest.raises(MessageError):
        decode(payload, Receipt)


def test_command_unknown_action_rejected() -> None:
    with pytest.raises(MessageError):
        decode(b'{"schema":"facegate.command/1","action":"format_disk"}', Command)


def test_gallery_change_embedding_bytes_round_trip() -> None:
    vector = np.linspace(-1, 1, 128, dtype=np.float32)
    change = GalleryChange(
        gallery="staff",
        version=4,
        model="sface-2021dec",
        upserts=[
            Template(person_id="p", template_id="t", model="sface-2021dec", embedding=embedding_bytes(vector))
        ],
    )
    back = decode(encode(change), GalleryChange)
    np.testing.assert_array_equal(back.upserts[0].vector(), vector)


def test_snapshot_msgpack_round_trip_and_schema_checked() -> None:
    snap = Snapshot(
        gallery="g",
        version=3,
        model="m",
        embedding_size=2,
        templates=[SnapshotTemplate(person_id="p", template_id="t", embedding=b"\0" * 8)],
    )
    assert decode_snapshot(encode_snapshot(snap)) == snap
    with pytest.raises(MessageError):
        decode_snapshot(b"\x01\x02garbage")


def test_receipt_rejected_field_round_trips_and_old_receipts_decode_without_it() -> None:
    receipt = Receipt(event_ids=["a"], rejected=[RejectedEvent(id="b", reason="malformed")])
    assert decode(encode(receipt), Receipt).rejected == [RejectedEvent(id="b", reason="malformed")]
    old = b'{"schema":"facegate.receipt/1","id":"x","ts":"2026-01-01T00:00:00Z","event_ids":["a"]}'
    assert decode(old, Receipt).rejected == []


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (Heartbeat, {"uptime_s": 1.0, "cameras": {f"c{i}": {"state": "ok"} for i in range(65)}}),
        (Heartbeat, {"uptime_s": 1e300}),
        (Heartbeat, {"uptime_s": 1.0, "galleries": {"g" * 65: 1}}),
        (Status, {"state": "online", "software": "v" * 129}),
        (Status, {"state": "online", "ts": "1999-12-31T23:59:59Z"}),
    ],
)
def test_decode_status_heartbeat_beyond_limits_raise_message_error(
    kind: type[Heartbeat] | type[Status], payload: dict[str, object]
) -> None:
    """Guards issue 13 finding 1: the heartbeat and status schemas had no size or range limits."""
    schema = "facegate.heartbeat/1" if kind is Heartbeat else "facegate.status/1"
    data = {"schema": schema, "site": "s", "edge": "e", **payload}
    with pytest.raises(MessageError):
        decode(msgspec.json.encode(data), kind)
