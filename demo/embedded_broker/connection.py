"""One client connection: the CONNECT handshake, then its packets until it disconnects or breaks a rule.

Speaks MQTT 5.0 and 3.1.1 (Facegate's edges use 3.1.1, central 5.0); any other protocol level gets a
CONNACK "unacceptable protocol version" (3.1.1's return code 1, what an older client can read). QoS 2
is not supported: CONNACK says Maximum QoS 1, SUBACK grants at most QoS 1, a QoS 2 PUBLISH is a protocol
error (DISCONNECT 0x9B for MQTT 5; a 3.1.1 client is just disconnected), a Will of QoS 2 is refused
(MQTT 5) or sent at QoS 1 (3.1.1). Topic aliases and subscription identifiers are not offered (the
CONNACK says so); a client using them is disconnected. No enhanced authentication (AUTH).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from demo.embedded_broker import codec
from demo.embedded_broker.acl import WRITE
from demo.embedded_broker.codec import PacketError, Properties, encode_properties, property_items, read_packet
from demo.embedded_broker.packets import (
    PINGRESP_PACKET,
    Connect,
    Publish,
    UnsupportedProtocolError,
    connack,
    decode_connect,
    decode_disconnect,
    decode_puback,
    decode_publish,
    decode_subscribe,
    decode_unsubscribe,
    disconnect,
    puback,
    publish,
    refusal_311,
    suback,
    unsuback,
)
from demo.embedded_broker.router import Will
from demo.embedded_broker.sessions import NEVER, Delivery, Message, Session, Subscription
from demo.embedded_broker.topics import TopicError, check_topic, split_shared

if TYPE_CHECKING:
    from demo.embedded_broker.server import Server

log = logging.getLogger("demo.embedded_broker")
CONNECT_TIMEOUT_S = 10.0
QOS0_BACKLOG_BYTES = 8 * 1024 * 1024  # QoS 0 messages are dropped for a client this far behind
DISCONNECT_WITH_WILL = 0x04
CLOSE_GRACE_S = 2.0  # a closed connection is torn down after this long at the latest


class Connection:
    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.v5 = False
        self.keepalive = 0
        self.client_max_packet = 0  # the client's Maximum Packet Size (0: no limit)
        self.session: Session | None = None
        self.closed = False

    async def run(self) -> None:
        publish_will = True
        try:
            if await self._open():
                publish_will = await self._serve()
        except PacketError as err:
            log.info("client_protocol_error", extra={"client": self._name(), "error": str(err)})
            self.close(err.reason)
        except TimeoutError:
            log.info(
                "client_keepalive_expired", extra={"client": self._name(), "keepalive_s": self.keepalive}
            )
            self.close(codec.KEEP_ALIVE_TIMEOUT)
        except (asyncio.IncompleteReadError, OSError):
            pass  # closed by the client, the network or the broker
        finally:
            session, will = self.session, publish_will and not self.server.stopping
            if session is not None and session.link is self:
                log.info("client_disconnected", extra={"client": session.client_id, "will": will})
                self.server.router.connection_lost(session, will)
            self.close(None)

    def close(self, reason: int | None) -> None:
        if self.closed:
            return
        self.closed = True
        if reason is not None and self.v5 and self.session is not None:
            self.writer.write(disconnect(reason))
        self.writer.close()  # TLS: waits for the peer's close_notify, which a dead client never sends
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.writer.transport.abort)

    def send_publish(self, packet_id: int, delivery: Delivery, dup: bool) -> bool:
        if self.closed:
            return delivery.qos > 0  # stays in flight: sent again on the next connection
        message = delivery.message
        remaining = message.remaining_s()
        if remaining == 0:
            return False
        if delivery.qos == 0 and self.writer.transport.get_write_buffer_size() > QOS0_BACKLOG_BYTES:
            return False
        properties = None
        if self.v5:
            expiry = [] if remaining is None else [(codec.MESSAGE_EXPIRY, remaining)]
            properties = encode_properties([*message.properties, *expiry])
        data = publish(message.topic, message.payload, qos=delivery.qos, retain=delivery.retain, dup=dup,
                       packet_id=packet_id, properties=properties)  # fmt: skip
        if self.client_max_packet and len(data) > self.client_max_packet:
            log.info("message_too_large_for_client", extra={"client": self._name(), "bytes": len(data)})
            return False
        self.writer.write(data)
        return True

    async def _open(self) -> bool:
        """Read and answer the CONNECT; whether the client is now connected."""
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            ptype, _, body = await read_packet(self.reader, self.server.config.max_packet_size)
        if ptype != codec.CONNECT:
            raise PacketError(codec.PROTOCOL_ERROR, f"first packet of type {ptype}, not CONNECT")
        try:
            connect = decode_connect(body)
        except UnsupportedProtocolError as err:
            log.info("client_refused", extra={"reason": "unsupported protocol", "protocol": str(err)})
            self.writer.write(refusal_311(1))
            return False
        self.v5 = connect.v5
        refusal = self._refusal(connect)
        if refusal is not None:
            log.info(
                "client_refused",
                extra={"client": connect.client_id, "user": connect.username, "reason": refusal},
            )
            self.writer.write(connack(self.v5, False, refusal))
            return False
        self._start_session(connect)
        return True

    def _refusal(self, connect: Connect) -> int | None:
        properties, will = connect.properties, connect.will
        if codec.AUTH_METHOD in properties:
            return codec.BAD_AUTHENTICATION_METHOD
        if properties.get(codec.RECEIVE_MAXIMUM) == 0 or properties.get(codec.MAXIMUM_PACKET_SIZE) == 0:
            return codec.PROTOCOL_ERROR
        if will is not None and will.qos == 2 and self.v5:
            return codec.QOS_NOT_SUPPORTED
        if will is not None and not _valid_topic(will.topic):
            return codec.TOPIC_NAME_INVALID
        if not connect.client_id and not connect.clean_start:
            return codec.CLIENT_ID_NOT_VALID
        if connect.username is None:
            anonymous_ok = (
                self.server.config.allow_anonymous and not self.server.config.use_username_as_clientid
            )
            return None if anonymous_ok else codec.NOT_AUTHORIZED
        if not self.server.passwords.verify(connect.username, connect.password):
            return codec.BAD_USERNAME_OR_PASSWORD
        return None

    def _start_session(self, connect: Connect) -> None:
        router, properties = self.server.router, connect.properties
        client_id = connect.client_id or f"auto-{uuid.uuid4()}"
        if self.server.config.use_username_as_clientid and connect.username is not None:
            client_id = connect.username  # bound to the login: only it can take the session over
        if connect.v5:
            expiry = int(properties.get(codec.SESSION_EXPIRY, 0))
        else:
            expiry = (
                0 if connect.clean_start else (self.server.config.persistent_client_expiration_s or NEVER)
            )
        router.take_over(client_id)
        session, present = router.open(client_id, connect.username, connect.clean_start, expiry)
        if connect.will is not None:
            will = connect.will
            message = _message(will.topic, will.payload, min(will.qos, 1), will.retain, will.properties)
            router.wills[client_id] = Will(message, int(will.properties.get(codec.WILL_DELAY, 0)))
        self.keepalive = connect.keepalive
        self.client_max_packet = int(properties.get(codec.MAXIMUM_PACKET_SIZE, 0))
        self.writer.write(
            connack(self.v5, present, codec.SUCCESS, self._connack_properties(connect, client_id))
        )
        self.session = session
        session.attach(self, int(properties.get(codec.RECEIVE_MAXIMUM, 65535)))
        log.info(
            "client_connected",
            extra={"client": client_id, "user": connect.username, "mqtt": "5" if self.v5 else "3.1.1",
                   "session_present": present, "queued": len(session.queue) + len(session.inflight)},
        )  # fmt: skip

    def _connack_properties(self, connect: Connect, client_id: str) -> bytes:
        config = self.server.config
        items: list[tuple[int, Any]] = [
            (codec.MAXIMUM_QOS, 1),
            (codec.RECEIVE_MAXIMUM, min(config.limits.max_inflight or 65535, 65535)),
            (codec.SUBSCRIPTION_IDS_AVAILABLE, 0),
        ]
        if config.max_packet_size:
            items.append((codec.MAXIMUM_PACKET_SIZE, config.max_packet_size))
        if not connect.client_id:  # only for an empty id (MQTT 5 3.2.2.3.7); a login-bound one is silent
            items.append((codec.ASSIGNED_CLIENT_ID, client_id))
        return encode_properties(items)

    async def _serve(self) -> bool:
        """Handle packets until the client's DISCONNECT; whether its will is to be published."""
        session, limit = self.session, self.server.config.max_packet_size
        assert session is not None
        timeout = self.keepalive * 1.5 if self.keepalive else None
        while True:
            async with asyncio.timeout(timeout):
                ptype, flags, body = await read_packet(self.reader, limit)
            if ptype == codec.PUBLISH:
                self._on_publish(session, decode_publish(flags, body, self.v5))
            elif ptype == codec.PUBACK:
                session.acknowledged(decode_puback(body))
            elif ptype == codec.SUBSCRIBE:
                self._on_subscribe(session, body)
            elif ptype == codec.UNSUBSCRIBE:
                request = decode_unsubscribe(body, self.v5)
                codes = [0 if self.server.router.unsubscribe(session, f) else codec.NO_SUBSCRIPTION_EXISTED
                         for f in request.filters]  # fmt: skip
                self.writer.write(unsuback(request.packet_id, self.v5, codes))
            elif ptype == codec.PINGREQ:
                self.writer.write(PINGRESP_PACKET)
            elif ptype == codec.DISCONNECT:
                reason, properties = decode_disconnect(body, self.v5)
                if session.expiry_s and codec.SESSION_EXPIRY in properties:
                    session.expiry_s = int(properties[codec.SESSION_EXPIRY])
                return reason == DISCONNECT_WITH_WILL
            else:
                raise PacketError(codec.PROTOCOL_ERROR, f"unexpected packet type {ptype}")

    def _on_publish(self, session: Session, packet: Publish) -> None:
        if packet.qos == 2:
            raise PacketError(codec.QOS_NOT_SUPPORTED, "QoS 2 is not supported (Maximum QoS is 1)")
        if codec.TOPIC_ALIAS in packet.properties:
            raise PacketError(codec.TOPIC_ALIAS_INVALID, "topic aliases are not supported")
        if not _valid_topic(packet.topic):
            raise PacketError(codec.TOPIC_NAME_INVALID, f"topic name {packet.topic!r} is not valid")
        router = self.server.router
        allowed = router.acl.allows(session.username, session.client_id, packet.topic, WRITE)
        matched = False
        if allowed:
            message = _message(packet.topic, packet.payload, packet.qos, packet.retain, packet.properties)
            matched = router.publish(message, session.client_id)
        else:
            log.warning("publish_denied", extra={"client": session.client_id, "topic": packet.topic})
        if packet.qos == 1:
            reason = (
                codec.NOT_AUTHORIZED if not allowed else (0 if matched else codec.NO_MATCHING_SUBSCRIBERS)
            )
            self.writer.write(puback(packet.packet_id, self.v5, reason))

    def _on_subscribe(self, session: Session, body: bytes) -> None:
        request, router = decode_subscribe(body, self.v5), self.server.router
        if codec.SUBSCRIPTION_ID in request.properties:
            raise PacketError(
                codec.SUBSCRIPTION_IDS_NOT_SUPPORTED, "subscription identifiers are not supported"
            )
        codes, retained = [], []
        for wire, options in request.entries:
            if options & (0xC0 if self.v5 else 0xFC) or options & 0x03 == 3 or (options >> 4) & 0x03 == 3:
                raise PacketError(codec.MALFORMED, f"subscription options {options:#x}")
            try:
                group, topic_filter = split_shared(wire)
            except TopicError:
                codes.append(codec.TOPIC_FILTER_INVALID if self.v5 else 0x80)
                continue
            qos = min(options & 0x03, 1)
            subscription = Subscription(topic_filter, qos, group, bool(options & 0x04), bool(options & 0x08),
                                        (options >> 4) & 0x03)  # fmt: skip
            new = router.subscribe(session, wire, subscription)
            codes.append(qos)
            if group is None and (
                subscription.retain_handling == 0 or (subscription.retain_handling == 1 and new)
            ):
                retained += router.retained_for(session, subscription)
        self.writer.write(suback(request.packet_id, self.v5, codes))
        for delivery in retained:
            session.deliver(delivery)

    def _name(self) -> str:
        return (
            self.session.client_id
            if self.session is not None
            else str(self.writer.get_extra_info("peername"))
        )


def _valid_topic(topic: str) -> bool:
    try:
        check_topic(topic)
    except TopicError:
        return False
    return True


def _message(topic: str, payload: bytes, qos: int, retain: bool, properties: Properties) -> Message:
    expiry = properties.get(codec.MESSAGE_EXPIRY)
    expires_at = None if expiry is None else time.monotonic() + int(expiry)
    return Message(
        topic, payload, qos, retain, tuple(property_items(properties, codec.FORWARDED)), expires_at
    )
