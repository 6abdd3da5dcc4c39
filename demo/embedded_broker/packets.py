"""The packets the embedded broker reads and writes, MQTT 5.0 and 3.1.1 (protocol levels 5 and 4).

Decoders turn a packet body into a frozen value; encoders build whole packets. MQTT 5 fields (properties,
reason codes) are left out for a 3.1.1 client.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from demo.embedded_broker.codec import (
    CONNACK,
    DISCONNECT,
    MALFORMED,
    PROTOCOL_ERROR,
    PUBACK,
    PUBLISH,
    SUBACK,
    UNSUBACK,
    PacketError,
    Properties,
    Reader,
    packet,
    utf8,
)

LEVEL_311, LEVEL_5 = 4, 5
PINGRESP_PACKET = bytes((0xD0, 0x00))
V3_RETURN_CODES = {0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4}  # MQTT 5 reason -> 3.1.1 CONNACK; others: 5


class UnsupportedProtocolError(Exception):
    """A CONNECT of a protocol other than MQTT 3.1.1 or 5.0 (answered with a 3.1.1-style CONNACK)."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Connect:
    level: int
    clean_start: bool
    keepalive: int
    client_id: str
    username: str | None
    password: bytes | None
    will: Will | None
    properties: Properties

    @property
    def v5(self) -> bool:
        return self.level == LEVEL_5


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int
    properties: Properties


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    properties: Properties
    entries: tuple[tuple[str, int], ...]  # (topic filter as sent, subscription options byte)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: tuple[str, ...]


def decode_connect(body: bytes) -> Connect:
    r = Reader(body)
    name, level = r.utf8(), r.u8()
    if (name, level) not in (("MQTT", LEVEL_311), ("MQTT", LEVEL_5)):
        raise UnsupportedProtocolError(f"{name} protocol level {level}")
    flags, keepalive = r.u8(), r.u16()
    if flags & 0x01:
        raise PacketError(MALFORMED, "CONNECT's reserved flag is set")
    properties = r.properties() if level == LEVEL_5 else {}
    client_id = r.utf8()
    will = None
    if flags & 0x04:
        will_properties = r.properties() if level == LEVEL_5 else {}
        topic, payload = r.utf8(), r.binary()
        will = Will(topic, payload, (flags >> 3) & 0x03, bool(flags & 0x20), will_properties)
    elif flags & 0x38:
        raise PacketError(MALFORMED, "Will QoS or Will Retain set without a Will")
    username = r.utf8() if flags & 0x80 else None
    password = r.binary() if flags & 0x40 else None
    if will is not None and will.qos == 3:
        raise PacketError(MALFORMED, "Will QoS 3")
    return Connect(level, bool(flags & 0x02), keepalive, client_id, username, password, will, properties)


def decode_publish(flags: int, body: bytes, v5: bool) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise PacketError(MALFORMED, "PUBLISH with QoS 3")
    r = Reader(body)
    topic = r.utf8()
    packet_id = r.u16() if qos else 0
    if qos and not packet_id:
        raise PacketError(PROTOCOL_ERROR, "PUBLISH with QoS > 0 and packet id 0")
    properties = r.properties() if v5 else {}
    return Publish(topic, r.rest(), qos, bool(flags & 0x01), bool(flags & 0x08), packet_id, properties)


def decode_subscribe(body: bytes, v5: bool) -> Subscribe:
    r = Reader(body)
    packet_id = r.u16()
    properties = r.properties() if v5 else {}
    entries = []
    while not r.at_end():
        entries.append((r.utf8(), r.u8()))
    if not entries:
        raise PacketError(PROTOCOL_ERROR, "SUBSCRIBE without a topic filter")
    return Subscribe(packet_id, properties, tuple(entries))


def decode_unsubscribe(body: bytes, v5: bool) -> Unsubscribe:
    r = Reader(body)
    packet_id = r.u16()
    if v5:
        r.properties()
    filters = []
    while not r.at_end():
        filters.append(r.utf8())
    if not filters:
        raise PacketError(PROTOCOL_ERROR, "UNSUBSCRIBE without a topic filter")
    return Unsubscribe(packet_id, tuple(filters))


def decode_puback(body: bytes) -> int:
    """The packet id a client acknowledges (its reason code, if any, is not needed)."""
    return Reader(body).u16()


def decode_disconnect(body: bytes, v5: bool) -> tuple[int, Properties]:
    """(reason code, properties) of a client's DISCONNECT; 3.1.1 has neither (normal disconnection)."""
    if not v5 or not body:
        return 0, {}
    r = Reader(body)
    reason = r.u8()
    return reason, (r.properties() if not r.at_end() else {})


def connack(v5: bool, session_present: bool, reason: int, properties: bytes = b"\x00") -> bytes:
    if not v5:
        return packet(
            CONNACK, 0, bytes((int(session_present), V3_RETURN_CODES.get(reason, 5) if reason else 0))
        )
    return packet(CONNACK, 0, bytes((int(session_present), reason)) + properties)


def refusal_311(return_code: int) -> bytes:
    """A 3.1.1 CONNACK refusing the connection (for protocols the broker does not speak)."""
    return packet(CONNACK, 0, bytes((0, return_code)))


def publish(topic: str, payload: bytes, *, qos: int, retain: bool, dup: bool, packet_id: int,
            properties: bytes | None) -> bytes:  # fmt: skip
    """A PUBLISH; `properties` is the encoded property block for an MQTT 5 receiver, None for 3.1.1."""
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = utf8(topic) + (struct.pack("!H", packet_id) if qos else b"") + (properties or b"")
    return packet(PUBLISH, flags, body + payload)


def puback(packet_id: int, v5: bool, reason: int) -> bytes:
    tail = bytes((reason,)) if v5 and reason else b""  # MQTT 5 lets a success omit its reason code
    return packet(PUBACK, 0, struct.pack("!H", packet_id) + tail)


def suback(packet_id: int, v5: bool, codes: list[int]) -> bytes:
    return packet(SUBACK, 0, struct.pack("!H", packet_id) + (b"\x00" if v5 else b"") + bytes(codes))


def unsuback(packet_id: int, v5: bool, codes: list[int]) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" + bytes(codes) if v5 else b"")
    return packet(UNSUBACK, 0, body)


def disconnect(reason: int) -> bytes:
    """An MQTT 5 DISCONNECT from the broker (3.1.1 has none: the broker just closes)."""
    return packet(DISCONNECT, 0, bytes((reason,)))
