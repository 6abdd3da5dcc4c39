"""Where messages go: sessions by client id, retained messages by topic, shared subscription groups.

- A message goes once to each session with a matching ordinary subscription (at the highest QoS among
  its matching ones), and to one member of each `$share/<group>/<filter>` group that matches: members
  take turns (round robin), connected members first; a group whose members are all away queues it for
  the next in turn. Every delivery needs the receiver's read right (acl.py).
- Retained messages: a retained publish replaces the topic's message, an empty one deletes it; they go to
  new ordinary subscriptions (never to shared ones), with the RETAIN flag.
- Wills: published when a connection ends without a normal DISCONNECT (or with reason 0x04), after the
  Will Delay Interval when the session outlives the connection; only if the client may write the topic.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from demo.embedded_broker.acl import READ, WRITE, Acl
from demo.embedded_broker.codec import SESSION_TAKEN_OVER
from demo.embedded_broker.config import Limits
from demo.embedded_broker.sessions import NEVER, Delivery, Message, Session, Subscription
from demo.embedded_broker.topics import matches

log = logging.getLogger("demo.embedded_broker")


@dataclass(eq=False)
class ShareGroup:
    members: dict[str, Subscription] = field(default_factory=dict)  # client id -> its subscription
    turn: int = 0


@dataclass(frozen=True, slots=True)
class Will:
    message: Message
    delay_s: int


class Router:
    def __init__(self, limits: Limits, acl: Acl) -> None:
        self.limits, self.acl = limits, acl
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self.groups: dict[tuple[str, str], ShareGroup] = {}
        self.wills: dict[str, Will] = {}  # client id -> the will of its current connection
        self.pending_wills: dict[str, Message] = {}  # delayed: published when the delay or session ends

    def open(
        self, client_id: str, username: str | None, clean_start: bool, expiry_s: int
    ) -> tuple[Session, bool]:
        """The client's session (a new one with clean start or none kept) and whether it was kept."""
        old = self.sessions.get(client_id)
        if old is not None and clean_start:
            self.end(old)
            old = None
        if old is not None:
            old.username, old.expiry_s = username, expiry_s
            self._publish_pending_will(client_id, publish=False)
            return old, True
        session = Session(client_id, username, self.limits, expiry_s)
        self.sessions[client_id] = session
        return session, False

    def take_over(self, client_id: str) -> None:
        """A new connection for a connected client id: the old one goes (its will, unless delayed)."""
        session = self.sessions.get(client_id)
        if session is None or session.link is None:
            return
        link = session.link
        session.detach()
        will = self.wills.pop(client_id, None)
        if will is not None and not will.delay_s:
            self.publish_will(session, will.message)
        link.close(SESSION_TAKEN_OVER)

    def connection_lost(self, session: Session, publish_will: bool) -> None:
        """The session's connection ended: its will (now or after the delay), its expiry."""
        session.detach()
        will = self.wills.pop(session.client_id, None)
        loop = asyncio.get_running_loop()
        if will is not None and publish_will:
            if will.delay_s and session.expiry_s:
                self.pending_wills[session.client_id] = will.message
                delay = min(will.delay_s, session.expiry_s)
                session.will_timer = loop.call_later(delay, self._publish_pending_will, session.client_id)
            else:
                self.publish_will(session, will.message)
        if session.expiry_s == 0:
            self.end(session)
        elif session.expiry_s != NEVER:
            session.expiry_timer = loop.call_later(session.expiry_s, self.end, session)

    def end(self, session: Session) -> None:
        """Drop a session (expired, replaced by a clean start): its subscriptions and queue go with it."""
        if self.sessions.get(session.client_id) is not session:
            return
        self._publish_pending_will(session.client_id)
        for timer in (session.expiry_timer, session.will_timer):
            if timer is not None:
                timer.cancel()
        del self.sessions[session.client_id]
        for wire in list(session.subscriptions):
            self.unsubscribe(session, wire)

    def publish_will(self, session: Session, message: Message) -> None:
        if self.acl.allows(session.username, session.client_id, message.topic, WRITE):
            self.publish(message, session.client_id)
        else:
            log.warning("will_denied", extra={"client": session.client_id, "topic": message.topic})

    def _publish_pending_will(self, client_id: str, publish: bool = True) -> None:
        message = self.pending_wills.pop(client_id, None)
        session = self.sessions.get(client_id)
        if message is not None and session is not None and publish:
            self.publish_will(session, message)

    def publish(self, message: Message, publisher: str | None) -> bool:
        """Route a message the publisher may write; whether anyone was to receive it."""
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        matched = False
        for session in self.sessions.values():
            found = [
                s
                for s in session.subscriptions.values()
                if s.group is None and matches(s.topic_filter, message.topic)
            ]
            found = [s for s in found if not (s.no_local and session.client_id == publisher)]
            if found and self._may_read(session, message.topic):
                qos = min(message.qos, max(s.qos for s in found))
                retain = message.retain and any(s.retain_as_published for s in found)
                session.deliver(Delivery(message, qos, retain))
                matched = True
        for (_, topic_filter), group in self.groups.items():
            if matches(topic_filter, message.topic):
                matched = self._deliver_to_one(group, message) or matched
        return matched

    def _deliver_to_one(self, group: ShareGroup, message: Message) -> bool:
        members = list(group.members.items())
        chosen: tuple[int, Session, Subscription] | None = None
        for step in range(len(members)):
            index = (group.turn + step) % len(members)
            client_id, subscription = members[index]
            session = self.sessions[client_id]
            if not self._may_read(session, message.topic):
                continue
            if session.link is not None:
                chosen = (index, session, subscription)
                break
            chosen = chosen or (index, session, subscription)
        if chosen is None:
            return False
        index, session, subscription = chosen
        group.turn = index + 1
        session.deliver(Delivery(message, min(message.qos, subscription.qos), retain=False))
        return True

    def _may_read(self, session: Session, topic: str) -> bool:
        return self.acl.allows(session.username, session.client_id, topic, READ)

    def subscribe(self, session: Session, wire: str, subscription: Subscription) -> bool:
        """Add or replace a subscription; whether it is new."""
        new = wire not in session.subscriptions
        session.subscriptions[wire] = subscription
        if subscription.group is not None:
            key = (subscription.group, subscription.topic_filter)
            self.groups.setdefault(key, ShareGroup()).members[session.client_id] = subscription
        return new

    def retained_for(self, session: Session, subscription: Subscription) -> list[Delivery]:
        """The retained messages a new ordinary subscription receives."""
        found = []
        for topic, message in list(self.retained.items()):
            if message.remaining_s() == 0:
                del self.retained[topic]
            elif matches(subscription.topic_filter, topic) and self._may_read(session, topic):
                found.append(Delivery(message, min(message.qos, subscription.qos), retain=True))
        return found

    def unsubscribe(self, session: Session, wire: str) -> bool:
        subscription = session.subscriptions.pop(wire, None)
        if subscription is None:
            return False
        if subscription.group is not None:
            key = (subscription.group, subscription.topic_filter)
            group = self.groups.get(key)
            if group is not None:
                group.members.pop(session.client_id, None)
                if not group.members:
                    del self.groups[key]
        return True
