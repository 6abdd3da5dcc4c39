"""Fixtures of central's ingest and fleet-state tests."""

from __future__ import annotations

import pytest

from central.settings import CentralSettings
from devtools.services import MosquittoFactory, MqttBroker
from tests.support.ingest_rig import EDGE, SITE, mqtt_settings, register_edge


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MqttBroker:
    """A private broker without persistence for one test."""
    return mosquitto_factory(persistence=False).endpoint


@pytest.fixture
def settings(central_settings: CentralSettings, broker: MqttBroker) -> CentralSettings:
    """Central's settings on `broker`, with the edge SITE/EDGE registered."""
    register_edge(central_settings.database_url, SITE, EDGE)
    return mqtt_settings(central_settings, broker)
