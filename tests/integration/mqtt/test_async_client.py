"""The common MQTT client's asyncio face with central's policy (MQTT 5, persistent session, manual acks,
shared subscriptions) against private Mosquitto instances: acknowledged publishes, manual acks, shared
subscriptions, refused logins."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from common.mqtt.aio import AsyncMqttClient
from common.mqtt.errors import MqttError
from common.mqtt.incoming import Incoming
from common.mqtt.settings import MqttSettings
from devtools.services import MosquittoFactory, MqttBroker, MqttTestClient
from tests.support.secured_broker import secured_broker

TOPIC = "facegate/v1/s1/e1/events"


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MqttBroker:
    return mosquitto_factory(persistence=False).endpoint


def options(broker: MqttBroker, **fields: object) -> MqttSettings:
    """Central's policy (as central/mqtt/options.py sets it) on `broker`."""
    base = MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id=f"c-{uuid.uuid4().hex[:8]}",
        protocol="5",
        session_expiry_s=7 * 24 * 3600,
        receive_maximum=1000,
        manual_ack=True,
        shared_group="central",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


async def started(opts: MqttSettings, *subscriptions: tuple[str, list[Incoming], bool]) -> AsyncMqttClient:
    client = AsyncMqttClient(opts)
    for topic_filter, sink, manual in subscriptions:
        client.subscribe(topic_filter, sink.append, shared=True, manual_ack=manual)
    await client.start()
    assert await client.wait_connected(5)
    await asyncio.sleep(0.2)  # SUBACK
    return client


async def until(condition: object, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_mqtt_publish_returns_after_puback_and_is_delivered(broker: MqttBroker) -> None:
    async def scenario() -> None:
        client = await started(options(broker))
        with MqttTestClient(broker) as listener:
            listener.subscribe("facegate/v1/s1/e1/receipts")
            await client.publish("facegate/v1/s1/e1/receipts", b"hello")
            assert listener.next_message(5).payload == b"hello"
        await client.stop()

    asyncio.run(scenario())


def test_mqtt_publish_while_disconnected_raises_unavailable(mosquitto_factory: MosquittoFactory) -> None:
    instance = mosquitto_factory(persistence=False, start=False)

    async def scenario() -> None:
        client = AsyncMqttClient(options(instance.endpoint))
        await client.start()
        with pytest.raises(MqttError):
            await client.publish("facegate/v1/s1/e1/receipts", b"x")
        await client.stop()

    asyncio.run(scenario())


def test_mqtt_unacked_message_redelivered_on_next_session(broker: MqttBroker) -> None:
    opts = options(broker)

    async def scenario() -> None:
        first: list[Incoming] = []
        client = await started(opts, (TOPIC, first, True))
        with MqttTestClient(broker) as edge:
            edge.publish(TOPIC, b"kept")
            await until(lambda: len(first) == 1)
            await client.stop()  # never acknowledged
            edge.publish(TOPIC, b"while away")
        second: list[Incoming] = []
        client = await started(opts, (TOPIC, second, True))
        await until(lambda: len(second) == 2)
        assert sorted(m.payload for m in second) == [b"kept", b"while away"]
        for message in second:
            assert client.ack(message)
        await client.stop()
        third: list[Incoming] = []
        client = await started(opts, (TOPIC, third, True))
        await asyncio.sleep(0.5)
        assert third == []  # acknowledged: gone from the session
        await client.stop()

    asyncio.run(scenario())


def test_mqtt_shared_subscription_splits_messages_between_replicas(broker: MqttBroker) -> None:
    async def scenario() -> None:
        a: list[Incoming] = []
        b: list[Incoming] = []
        one = await started(options(broker), (TOPIC, a, False))
        two = await started(options(broker), (TOPIC, b, False))
        with MqttTestClient(broker) as edge:
            for i in range(20):
                edge.publish(TOPIC, str(i).encode())
        await until(lambda: len(a) + len(b) == 20)
        await asyncio.sleep(0.2)
        assert len(a) + len(b) == 20 and a and b
        await one.stop()
        await two.stop()

    asyncio.run(scenario())


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[MqttBroker]:
    """A broker of this test's own that needs a password (user `central`, password `right`)."""
    with secured_broker(tmp_path, {"central": "right"}) as broker:
        yield broker.endpoint


def test_mqtt_refused_login_retried_with_its_long_backoff_not_the_short_one(secured: MqttBroker) -> None:
    """Guards issue 13 finding 8: a refused login stopped reconnecting for good. Now it is retried, at
    the refused-login backoff (here 0.4 s), not the ordinary one (0.01 s)."""

    async def scenario() -> None:
        opts = options(
            secured,
            username="central",
            password="wrong",
            backoff_min_s=0.01,
            backoff_max_s=0.01,
            refused_backoff_min_s=0.4,
            refused_backoff_max_s=0.4,
        )
        client = AsyncMqttClient(opts)
        await client.start()
        assert not await client.wait_connected(3)
        assert client.login_error is not None and "refused the login" in str(client.login_error)
        await asyncio.sleep(1.0)
        assert 2 <= client.logins_refused <= 6  # retried every 0.2-0.4 s (jittered), not every 0.01 s
        assert client.connects == 0
        await client.stop()

    asyncio.run(scenario())


def test_mqtt_ack_all_acknowledges_every_message_of_a_batch(broker: MqttBroker) -> None:
    opts = options(broker)

    async def scenario() -> None:
        received: list[Incoming] = []
        client = await started(opts, (TOPIC, received, True))
        with MqttTestClient(broker) as edge:
            for i in range(50):
                edge.publish(TOPIC, b"%d" % i)
            await until(lambda: len(received) == 50)
        assert client.ack_all(received) == 50
        await asyncio.sleep(0.2)  # the PUBACKs are on the wire
        await client.stop()
        again: list[Incoming] = []
        client = await started(opts, (TOPIC, again, True))
        await asyncio.sleep(0.5)
        assert again == []  # all acknowledged: nothing left in the session
        await client.stop()

    asyncio.run(scenario())


def test_mqtt_publish_nowait_is_delivered(broker: MqttBroker) -> None:
    async def scenario() -> None:
        client = await started(options(broker))
        with MqttTestClient(broker) as listener:
            listener.subscribe("facegate/v1/s1/e1/receipts")
            client.publish_nowait("facegate/v1/s1/e1/receipts", b"receipt")
            assert listener.next_message(5).payload == b"receipt"
        await client.stop()

    asyncio.run(scenario())


def test_mqtt_publish_nowait_while_disconnected_raises_unavailable(
    mosquitto_factory: MosquittoFactory,
) -> None:
    instance = mosquitto_factory(persistence=False, start=False)

    async def scenario() -> None:
        client = AsyncMqttClient(options(instance.endpoint))
        await client.start()
        with pytest.raises(MqttError):
            client.publish_nowait("facegate/v1/s1/e1/receipts", b"x")
        await client.stop()

    asyncio.run(scenario())
