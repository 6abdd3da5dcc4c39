"""Real backing services for tests: PostgreSQL, Redis, Mosquitto (MQTT) and S3 (moto or MinIO).

The pytest fixtures live in tests.services.fixtures (registered by tests/conftest.py); this package
exports the types a test annotates its fixture arguments with. See docs/testing-services.md.
"""

from tests.services.endpoints import MqttBroker, PostgresService, RedisService, S3Service
from tests.services.factories import MosquittoFactory, PostgresFactory, RedisFactory, S3Factory
from tests.services.instance import ServiceInstance
from tests.services.mqtt import MqttTestClient, Received
from tests.services.readiness import ServiceStartError

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
