"""Round trips against the real backing services, and SIGKILL/restart of private instances."""

from __future__ import annotations

import io
import uuid

import psycopg
import pytest
import redis

from devtools.services import (
    MosquittoFactory,
    MqttBroker,
    MqttTestClient,
    PostgresFactory,
    PostgresService,
    RedisFactory,
    RedisService,
    S3Factory,
    S3Service,
    ServiceStartError,
    mosquitto,
)
from devtools.services import s3 as s3_helpers
from devtools.services.ports import free_port, port_is_listening


def _port_open(host: str, port: int) -> bool:
    return port_is_listening(host, port, timeout=0.2)


# --- shared services: one real round trip each ------------------------------------------------------


def test_postgres_db_create_table_insert_select_roundtrips(postgres_db: PostgresService) -> None:
    with psycopg.connect(postgres_db.dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (postgres_db.dbname,)
        conn.execute("CREATE TABLE gate_event (id serial PRIMARY KEY, gate text NOT NULL)")
        conn.execute("INSERT INTO gate_event (gate) VALUES (%s), (%s)", ("north", "south"))
        rows = conn.execute("SELECT gate FROM gate_event ORDER BY id").fetchall()
    assert rows == [("north",), ("south",)]


def test_postgres_db_fresh_database_has_no_tables(postgres_db: PostgresService) -> None:
    with psycopg.connect(postgres_db.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert row.fetchone() == (0,)


def test_redis_db_set_get_roundtrips_in_own_database(redis_db: RedisService) -> None:
    conn = redis.Redis.from_url(redis_db.url)
    try:
        key = redis_db.key_prefix + "gate:north"
        conn.set(key, b"open")
        assert conn.get(key) == b"open"
        assert conn.dbsize() == 1
    finally:
        conn.close()
    assert redis_db.db != 0


def test_mqtt_broker_qos1_publish_subscribe_delivers(mqtt_broker: MqttBroker, mqtt_topic_prefix: str) -> None:
    topic = mqtt_topic_prefix + "gate/north/event"
    with MqttTestClient(mqtt_broker) as subscriber, MqttTestClient(mqtt_broker) as publisher:
        subscriber.subscribe(topic, qos=1)
        publisher.publish(topic, b"opened", qos=1)
        message = subscriber.next_message()
    assert (message.topic, message.payload, message.qos, message.retain) == (topic, b"opened", 1, False)


def test_s3_server_bucket_create_put_get_roundtrips(s3_server: S3Service) -> None:
    client = s3_helpers.client(s3_server)
    bucket = f"facegate-test-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket_name=bucket)
    try:
        body = b"\x00embedding\xff" * 100
        client.put_object(
            bucket_name=bucket, object_name="faces/1.bin", data=io.BytesIO(body), length=len(body)
        )
        response = client.get_object(bucket_name=bucket, object_name="faces/1.bin")
        try:
            assert response.read() == body
        finally:
            response.close()
            response.release_conn()
    finally:
        s3_helpers.remove_bucket(s3_server, bucket)
    assert not client.bucket_exists(bucket_name=bucket)


def test_s3_bucket_fixture_bucket_exists_and_is_empty(s3_server: S3Service, s3_bucket: str) -> None:
    client = s3_helpers.client(s3_server)
    assert client.bucket_exists(bucket_name=s3_bucket)
    assert list(client.list_objects(bucket_name=s3_bucket, recursive=True)) == []


# --- private instances: SIGKILL, restart on the same port, what persists --------------------------------


def test_postgres_factory_sigkill_restart_keeps_committed_row(postgres_factory: PostgresFactory) -> None:
    pg = postgres_factory()
    with psycopg.connect(pg.endpoint.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE enrolment (person text)")
        conn.execute("INSERT INTO enrolment VALUES ('ada')")

    pg.kill()
    assert not pg.running
    assert not _port_open(pg.endpoint.host, pg.endpoint.port)

    assert pg.start() == pg.endpoint
    assert "not properly shut down" in pg.logs()  # crash recovery ran
    with psycopg.connect(pg.endpoint.dsn) as conn:
        assert conn.execute("SELECT person FROM enrolment").fetchall() == [("ada",)]

    pg.restart()  # clean stop + start keeps it too
    with psycopg.connect(pg.endpoint.dsn) as conn:
        assert conn.execute("SELECT person FROM enrolment").fetchall() == [("ada",)]


def test_redis_factory_sigkill_restart_with_aof_keeps_key(redis_factory: RedisFactory) -> None:
    instance = redis_factory(persistence=True)
    conn = redis.Redis.from_url(instance.endpoint.url)
    try:
        conn.set("gate:north", b"open")
        instance.kill()
        assert not _port_open(instance.endpoint.host, instance.endpoint.port)
        instance.start()
        assert conn.get("gate:north") == b"open"
    finally:
        conn.close()


def test_redis_factory_default_sigkill_restart_starts_empty(redis_factory: RedisFactory) -> None:
    instance = redis_factory()
    conn = redis.Redis.from_url(instance.endpoint.url)
    try:
        conn.set("gate:north", b"open")
        instance.kill()
        instance.start()
        assert conn.get("gate:north") is None
    finally:
        conn.close()


def test_mosquitto_factory_sigkill_restart_keeps_retained_message(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory()
    with MqttTestClient(broker.endpoint) as publisher:
        publisher.publish("gate/north/state", b"locked", qos=1, retain=True)
    mosquitto.wait_until_persisted(broker, b"locked")

    broker.kill()
    assert not _port_open(broker.endpoint.host, broker.endpoint.port)
    broker.start()

    with MqttTestClient(broker.endpoint) as subscriber:
        subscriber.subscribe("gate/north/state", qos=1)
        message = subscriber.next_message()
    assert (message.payload, message.retain) == (b"locked", True)


def test_mosquitto_factory_bad_config_raises_error_with_log_tail(mosquitto_factory: MosquittoFactory) -> None:
    with pytest.raises(ServiceStartError, match="exited before it became ready") as raised:
        mosquitto_factory(extra_config=["no_such_option true"])
    assert "no_such_option" in str(raised.value)


def test_s3_factory_sigkill_restart_serves_on_same_port(s3_factory: S3Factory) -> None:
    server = s3_factory()
    client = s3_helpers.client(server.endpoint)
    client.make_bucket(bucket_name="gate-snapshots")

    server.kill()
    assert not _port_open(server.endpoint.host, server.endpoint.port)
    assert server.start() == server.endpoint

    # MinIO keeps buckets on disk; moto_server keeps them in memory only
    assert client.bucket_exists(bucket_name="gate-snapshots") is server.endpoint.persistent


# --- helpers -------------------------------------------------------------------------------------------


def test_free_port_many_calls_distinct_unbound_ports() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    assert not any(_port_open("127.0.0.1", port) for port in ports)
