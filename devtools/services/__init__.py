"""Real backing services for tests: PostgreSQL, Redis, Mosquitto (MQTT) and S3 (moto or MinIO).

The pytest fixtures live in tests.support.service_fixtures (registered by tests/conftest.py); this package
exports the types a test annotates its fixture arguments with. See docs/testing-services.md.
"""

from devtools.services.endpoints import MqttBroker, PostgresService, RedisService, S3Service
from devtools.services.factories import MosquittoFactory, PostgresFactory, RedisFactory, S3Factory
from devtools.services.instance import ServiceInstance
from devtools.services.mqtt import MqttTestClient, Received
from devtools.services.readiness import ServiceStartError

__all__ = [
    "MosquittoFactory",
    "MqttBroker",
    "MqttTestClient",
    "PostgresFactory",
    "PostgresService",
    "Received",
    "RedisFactory",
    "RedisService",
    "S3Factory",
    "S3Service",
    "ServiceInstance",
    "ServiceStartError",
]
