"""Dead letters capped per edge (rows and bytes, oldest dropped) and expired, by the sweep the lifespan
starts with ingest (central/ingest/dead_letters.py)."""

from __future__ import annotations

import psycopg

from central.settings import CentralSettings
from devtools.services import MqttBroker
from tests.support.ingest_rig import central_mqtt, mqtt_settings, wait_for


def add(conn: psycopg.Connection, edge: str, size: int, age_days: float = 0) -> int:
    row = conn.execute(
        "INSERT INTO dead_letters (topic, payload, payload_size, reason, site_id, edge_id, received_at)"
        " VALUES (%s, %s, %s, 'malformed', 's1', %s, now() - make_interval(days => %s)) RETURNING id",
        (f"facegate/v1/s1/{edge}/events", b"x" * size, size, edge, age_days),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_dead_letters_capped_per_edge_by_count_and_bytes_and_expired(
    settings: CentralSettings, broker: MqttBroker
) -> None:
    """Guards issue 13 finding 9: every resend of a refused event added a row of up to 64 KiB, with no
    cap and no retention."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        many = [add(conn, "many", 100) for _ in range(5)]
        big = [add(conn, "big", 1500) for _ in range(3)]
        add(conn, "old", 10, age_days=10)
    capped = mqtt_settings(settings, broker, dead_letter_max_per_edge=3, dead_letter_max_bytes_per_edge=2000)
    expected = sorted(many[-3:] + big[-1:])
    with central_mqtt(capped, connected=False) as central:
        wait_for(lambda: kept(settings.database_url) == expected, 10, "the oldest beyond the caps deleted")
        metrics = central.client.get("/metrics").text
    for cause, count in (("retention", 1), ("count", 2), ("bytes", 2)):
        assert f'facegate_dead_letters_dropped_total{{cause="{cause}"}} {count}.0' in metrics


def kept(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [int(r[0]) for r in conn.execute("SELECT id FROM dead_letters ORDER BY id").fetchall()]
