"""Ingest under faults, with real processes: central stopped, PostgreSQL stopped, the broker restarted.

The events come from the production edge side (outbox, publisher, MQTT client); every scenario checks
that each event is stored exactly once and that the edge's outbox empties (every event receipted).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from central.settings import CentralSettings
from devtools.services import MosquittoFactory, MqttBroker, PostgresFactory
from devtools.services.instance import ServiceInstance
from tests.support.ingest_rig import EdgeRig, central_mqtt, mqtt_settings, register_edge, stored_ids, wait_for

SITE, EDGE = "site1", "edge1"


@pytest.fixture
def broker_instance(mosquitto_factory: MosquittoFactory) -> ServiceInstance[MqttBroker]:
    return mosquitto_factory(persistence=True)


@pytest.fixture
def settings(
    central_settings: CentralSettings, broker_instance: ServiceInstance[MqttBroker]
) -> CentralSettings:
    register_edge(central_settings.database_url, SITE, EDGE)
    return mqtt_settings(central_settings, broker_instance.endpoint)


def assert_exactly_once(dsn: str, ids: list[str]) -> None:
    stored = stored_ids(dsn)
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert sorted(stored) == sorted(ids)


def test_ingest_central_stopped_then_restarted_receives_backlog(
    settings: CentralSettings, broker_instance: ServiceInstance[MqttBroker], tmp_path: Path
) -> None:
    with EdgeRig(broker_instance.endpoint, SITE, EDGE, tmp_path) as edge:
        with central_mqtt(settings):
            ids = edge.emit(50)
            wait_for(lambda: len(stored_ids(settings.database_url)) == 50, 20, "the first events stored")
        ids += edge.emit(200, start=50)  # central is away: its persistent session queues them
        wait_for(lambda: edge.publisher.acknowledged >= 250, 20, "events acknowledged by the broker")
    # the edge is gone too (nothing is resent): only central's session can deliver the 200
    with central_mqtt(settings):
        wait_for(lambda: len(stored_ids(settings.database_url)) == 250, 30, "the backlog stored")
    assert_exactly_once(settings.database_url, ids)


def test_ingest_postgres_stopped_then_started_stores_every_event_once(
    central_settings: CentralSettings,
    broker_instance: ServiceInstance[MqttBroker],
    postgres_factory: PostgresFactory,
    tmp_path: Path,
) -> None:
    pg = postgres_factory()
    dsn = pg.endpoint.dsn
    register_edge(dsn, SITE, EDGE)
    settings = mqtt_settings(replace(central_settings, database_url=dsn), broker_instance.endpoint)
    with central_mqtt(settings), EdgeRig(broker_instance.endpoint, SITE, EDGE, tmp_path) as edge:
        ids = edge.emit(50)
        wait_for(lambda: len(stored_ids(dsn)) == 50, 20, "the first events stored")
        pg.stop()
        ids += edge.emit(100, start=50)
        time.sleep(3)  # ingest retries meanwhile, acknowledging nothing
        pg.start()
        wait_for(lambda: edge.backlog() == 0, 60, "every event receipted after PostgreSQL came back")
    assert_exactly_once(dsn, ids)


def test_ingest_broker_restarted_mid_stream_loses_and_doubles_nothing(
    settings: CentralSettings, broker_instance: ServiceInstance[MqttBroker], tmp_path: Path
) -> None:
    with central_mqtt(settings), EdgeRig(broker_instance.endpoint, SITE, EDGE, tmp_path) as edge:
        ids = edge.emit(300)
        wait_for(lambda: len(stored_ids(settings.database_url)) >= 20, 20, "ingest under way")
        broker_instance.restart()
        ids += edge.emit(100, start=300)
        wait_for(lambda: edge.backlog() == 0, 60, "every event receipted after the broker restart")
    assert_exactly_once(settings.database_url, ids)
