"""MQTT's wire primitives: the fixed header, variable byte integers, strings and MQTT 5 properties.

Everything here is pure bytes in, values out; `PacketError` carries the reason code a broken packet earns
(MQTT 5.0 section 2.4: the broker then sends DISCONNECT with it, to an MQTT 5 client, and closes).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
FLAGS_REQUIRED = {SUBSCRIBE: 0b0010, UNSUBSCRIBE: 0b0010, PUBREL: 0b0010}  # others: 0, except PUBLISH

# Reason codes (MQTT 5.0 section 2.4) the broker sends.
SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
UNSUPPORTED_PROTOCOL = 0x84
CLIENT_ID_NOT_VALID = 0x85
BAD_USERNAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_TOO_LARGE = 0x95
QOS_NOT_SUPPORTED = 0x9B
TOPIC_ALIAS_INVALID = 0x94
SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1

# Property identifiers used by name; PROPERTY_TYPES lists every one MQTT 5 defines.
PAYLOAD_FORMAT, MESSAGE_EXPIRY, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION_DATA = 0x01, 0x02, 0x03, 0x08, 0x09
SUBSCRIPTION_ID, SESSION_EXPIRY, ASSIGNED_CLIENT_ID, AUTH_METHOD = 0x0B, 0x11, 0x12, 0x15
WILL_DELAY, RECEIVE_MAXIMUM, TOPIC_ALIAS, MAXIMUM_QOS, USER_PROPERTY = 0x18, 0x21, 0x23, 0x24, 0x26
MAXIMUM_PACKET_SIZE, SUBSCRIPTION_IDS_AVAILABLE = 0x27, 0x29
FORWARDED = (PAYLOAD_FORMAT, CONTENT_TYPE, RESPONSE_TOPIC, CORRELATION_DATA, USER_PROPERTY)
"""What a PUBLISH passes on to subscribers (the message expiry is recomputed on every delivery)."""

_BYTE, _U16, _U32, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
PROPERTY_TYPES = {
    **dict.fromkeys((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A), _BYTE),
    **dict.fromkeys((0x13, 0x21, 0x22, 0x23), _U16),
    **dict.fromkeys((0x02, 0x11, 0x18, 0x27), _U32),
    0x0B: _VARINT,
    **dict.fromkeys((0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F), _UTF8),
    **dict.fromkeys((0x09, 0x16), _BINARY),
    0x26: _PAIR,
}
Properties = dict[int, Any]  # user properties (0x26): a list of (name, value); others: one value


class PacketError(Exception):
    """A packet the broker cannot accept; `reason` is the MQTT 5 reason code for the DISCONNECT."""

    def __init__(self, reason: int, what: str) -> None:
        super().__init__(what)
        self.reason = reason


async def read_packet(reader: asyncio.StreamReader, max_size: int) -> tuple[int, int, bytes]:
    """(packet type, flags, body) of the next packet; PacketError when larger than `max_size` (0: any)."""
    first = (await reader.readexactly(1))[0]
    length, shift, header = 0, 0, 1
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        header += 1
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            raise PacketError(MALFORMED, "remaining length longer than 4 bytes")
    if max_size and header + length > max_size:
        raise PacketError(PACKET_TOO_LARGE, f"packet of {header + length} bytes; the limit is {max_size}")
    ptype, flags = first >> 4, first & 0x0F
    if ptype != PUBLISH and flags != FLAGS_REQUIRED.get(ptype, 0):
        raise PacketError(MALFORMED, f"packet type {ptype} with reserved flags {flags:#06b}")
    return ptype, flags, await reader.readexactly(length)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    """A whole packet: fixed header and body."""
    return bytes(((ptype << 4) | flags,)) + varint(len(body)) + body


def utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def binary(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def encode_properties(items: Iterable[tuple[int, Any]]) -> bytes:
    """The property block with its length prefix; a user property's value is a (name, value) pair."""
    out = bytearray()
    for ident, value in items:
        kind = PROPERTY_TYPES[ident]
        out += varint(ident)
        if kind == _BYTE:
            out.append(value)
        elif kind == _U16:
            out += struct.pack("!H", value)
        elif kind == _U32:
            out += struct.pack("!I", value)
        elif kind == _VARINT:
            out += varint(value)
        elif kind == _UTF8:
            out += utf8(value)
        elif kind == _BINARY:
            out += binary(value)
        else:
            out += utf8(value[0]) + utf8(value[1])
    return varint(len(out)) + bytes(out)


def property_items(properties: Properties, idents: Iterable[int]) -> list[tuple[int, Any]]:
    """(identifier, value) pairs of `properties` for `idents`, user properties expanded."""
    items: list[tuple[int, Any]] = []
    for ident in idents:
        if ident == USER_PROPERTY:
            items += [(ident, pair) for pair in properties.get(ident, [])]
        elif ident in properties:
            items.append((ident, properties[ident]))
    return items


class Reader:
    """Reads MQTT fields from one packet's body; PacketError(MALFORMED) past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PacketError(MALFORMED, "packet shorter than its fields")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("!I", self.take(4))[0])

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 21:
                raise PacketError(MALFORMED, "variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def utf8(self) -> str:
        try:
            text = self.binary().decode()
        except UnicodeDecodeError as err:
            raise PacketError(MALFORMED, "a string is not UTF-8") from err
        if "\x00" in text:
            raise PacketError(MALFORMED, "a string holds U+0000")
        return text

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def properties(self) -> Properties:
        end = self.varint() + self.pos
        found: Properties = {}
        while self.pos < end:
            ident = self.varint()
            kind = PROPERTY_TYPES.get(ident)
            if kind is None:
                raise PacketError(MALFORMED, f"unknown property {ident:#x}")
            readers = (self.u8, self.u16, self.u32, self.varint, self.utf8, self.binary)
            if kind == _PAIR:
                found.setdefault(ident, []).append((self.utf8(), self.utf8()))
            else:
                found[ident] = readers[kind]()
        if self.pos != end:
            raise PacketError(MALFORMED, "properties overrun their length")
        return found
