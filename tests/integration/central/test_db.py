"""Central's PostgreSQL schema, migration runner, event partitions and pools, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from psycopg.types.json import Jsonb

from central.db import (
    MIGRATIONS_DIR,
    DatabaseUnavailableError,
    MigrationError,
    ensure_event_partitions,
    load_migrations,
    migrate,
    month_partition,
    open_async_pool,
    open_pool,
)
from devtools.services import PostgresService
from tests.support.paths import REPO

DOC = REPO / "docs" / "central-database.md"
TABLES = {
    "schema_migrations", "sites", "edges", "people", "enrollment_photos", "templates", "galleries",
    "gallery_sites", "gallery_people", "gallery_changes", "snapshots", "event_ids", "events",
    "events_default", "api_keys", "audit_log", "dead_letters",
}  # fmt: skip
Conn = psycopg.Connection[tuple[object, ...]]
T = TypeVar("T")


@pytest.fixture
def db(postgres_db: PostgresService) -> str:
    """DSN of a fresh database with every migration applied (partitions around the real now)."""
    migrate(postgres_db.dsn)
    return postgres_db.dsn


@pytest.fixture
def conn(db: str) -> Iterator[Conn]:
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection


def _run_together(count: int, work: Callable[[], T]) -> list[T]:
    """Run `work` in `count` threads released at the same moment; re-raise the first failure."""
    barrier = threading.Barrier(count)

    def start() -> T:
        barrier.wait(timeout=10)
        return work()

    with ThreadPoolExecutor(count) as executor:
        futures = [executor.submit(start) for _ in range(count)]
        return [future.result(timeout=60) for future in futures]


def _scalar(conn: Conn, query: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _insert_event(conn: Conn, event_id: uuid.UUID, ts: datetime, person: uuid.UUID | None = None) -> int:
    cur = conn.execute(
        "INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, person_id, score,"
        " threshold, quality, bbox, model_id, gallery_id, gallery_version)"
        " VALUES (%s, %s, 'hq', 'door-1', 'cam0', 7, %s, %s, 0.8, 0.5, 0.9, %s, 'sface-2021dec', 'staff', 3)",
        (event_id, ts, "recognized" if person else "unknown", person, [10.0, 20.0, 64.0, 64.0]),
    )
    return cur.rowcount


def _partition_of(conn: Conn, event_id: uuid.UUID) -> str:
    return str(_scalar(conn, "SELECT tableoid::regclass::text FROM events WHERE id = %s", (event_id,)))


# --- migration runner ------------------------------------------------------------------------------


def test_migrate_empty_database_creates_every_table(postgres_db: PostgresService) -> None:
    applied = migrate(postgres_db.dsn)
    assert applied == [m.name for m in load_migrations()]
    with psycopg.connect(postgres_db.dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        recorded = conn.execute("SELECT name, sha256 FROM schema_migrations ORDER BY name").fetchall()
    assert {str(r[0]) for r in rows} >= TABLES
    assert recorded == [(m.name, m.sha256) for m in load_migrations()]


def test_migrate_second_run_applies_nothing(db: str) -> None:
    assert migrate(db) == []


def test_migrate_changed_applied_file_is_refused(postgres_db: PostgresService, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(postgres_db.dsn, directory)
    edited = directory / "0002_galleries.sql"
    edited.write_text(edited.read_text() + "\n-- harmless comment, still a change\n")
    with pytest.raises(MigrationError, match=r"0002_galleries\.sql was changed"):
        migrate(postgres_db.dsn, directory)


def test_migrate_new_file_is_applied_alone(postgres_db: PostgresService, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(postgres_db.dsn, directory)
    (directory / "9000_extra.sql").write_text("CREATE TABLE extra (id integer);")
    assert migrate(postgres_db.dsn, directory) == ["9000_extra.sql"]


def test_migrate_failing_file_rolls_back_and_is_not_recorded(
    postgres_db: PostgresService, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "9000_broken.sql").write_text(
        "CREATE TABLE half (id integer);\nSELECT no_such_function();\n"
    )
    with pytest.raises(MigrationError, match=r"9000_broken\.sql failed"):
        migrate(postgres_db.dsn, directory)
    with psycopg.connect(postgres_db.dsn) as conn:
        assert _scalar(conn, "SELECT to_regclass('half')") is None
        assert _scalar(conn, "SELECT count(*) FROM schema_migrations") == len(load_migrations())


@pytest.mark.parametrize("name", ["1_short.sql", "0001_Upper.sql", "0003_dup.sql"])
def test_load_migrations_bad_name_or_duplicate_number_is_refused(tmp_path: Path, name: str) -> None:
    shutil.copytree(MIGRATIONS_DIR, tmp_path / "m")
    (tmp_path / "m" / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_lowercase_name|share the number"):
        load_migrations(tmp_path / "m")


def test_migrate_concurrent_runners_apply_each_migration_once(postgres_db: PostgresService) -> None:
    results = _run_together(6, lambda: migrate(postgres_db.dsn))
    applied = Counter(name for result in results for name in result)
    assert applied == Counter(m.name for m in load_migrations())  # each exactly once, all runners returned
    with psycopg.connect(postgres_db.dsn) as conn:
        assert _scalar(conn, "SELECT count(*) FROM schema_migrations") == len(load_migrations())


# --- gallery change log ----------------------------------------------------------------------------


def _gallery(conn: Conn, gallery: str = "staff") -> str:
    conn.execute(
        "INSERT INTO galleries (id, name, model_id) VALUES (%s, 'Staff', 'sface-2021dec')", (gallery,)
    )
    return gallery


def test_gallery_changes_concurrent_appenders_get_versions_without_gaps(db: str, conn: Conn) -> None:
    gallery = _gallery(conn)

    def append_twenty() -> list[int]:
        with psycopg.connect(db) as own:
            versions = []
            for i in range(20):
                with own.transaction():
                    change = Jsonb({"upserts": [str(uuid.uuid4())], "n": i})
                    versions.append(
                        int(str(_scalar(own, "SELECT append_gallery_change(%s, %s)", (gallery, change))))
                    )
            return versions

    first, second = _run_together(2, append_twenty)
    assert first == sorted(first) and second == sorted(second)
    assert sorted(first + second) == list(range(1, 41))
    rows = conn.execute("SELECT version FROM gallery_changes WHERE gallery_id = %s ORDER BY 1", (gallery,))
    assert [r[0] for r in rows] == list(range(1, 41))
    assert _scalar(conn, "SELECT current_version FROM galleries WHERE id = %s", (gallery,)) == 40


def test_gallery_changes_rolled_back_append_leaves_no_gap(db: str, conn: Conn) -> None:
    gallery = _gallery(conn)
    with psycopg.connect(db) as other:
        _scalar(other, "SELECT append_gallery_change(%s, '{}')", (gallery,))
        other.rollback()
    assert _scalar(conn, "SELECT append_gallery_change(%s, '{}')", (gallery,)) == 1


def test_gallery_changes_unknown_gallery_is_refused(conn: Conn) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match="gallery nope does not exist"):
        conn.execute("SELECT append_gallery_change('nope', '{}')")


# --- events: idempotency and partitions ------------------------------------------------------------


def test_events_same_id_inserted_twice_is_stored_once(conn: Conn) -> None:
    event_id, ts = uuid.uuid4(), datetime.now(UTC)
    assert _insert_event(conn, event_id, ts) == 1
    assert _insert_event(conn, event_id, ts) == 0
    assert _insert_event(conn, event_id, ts - timedelta(days=40)) == 0  # even with another ts (partition)
    assert _scalar(conn, "SELECT count(*) FROM events WHERE id = %s", (event_id,)) == 1


def test_events_same_id_in_two_concurrent_transactions_is_stored_once(db: str, conn: Conn) -> None:
    event_id, ts = uuid.uuid4(), datetime.now(UTC)

    def insert() -> int:
        with psycopg.connect(db) as own, own.transaction():
            return _insert_event(own, event_id, ts)

    assert sorted(_run_together(2, insert)) == [0, 1]
    assert _scalar(conn, "SELECT count(*) FROM events WHERE id = %s", (event_id,)) == 1


def test_events_failed_insert_does_not_claim_the_id(conn: Conn) -> None:
    event_id, ts = uuid.uuid4(), datetime.now(UTC)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO events (id, ts, site_id, edge_id, camera, track_id, kind, score, threshold,"
            " quality, bbox, model_id) VALUES (%s, %s, 'hq', 'e', 'c', 1, 'bogus', 0, 0, 0, %s, 'm')",
            (event_id, ts, [0.0, 0.0, 1.0, 1.0]),
        )
    assert _insert_event(conn, event_id, ts) == 1


def test_partitions_current_and_next_month_hold_their_events(conn: Conn) -> None:
    now = datetime.now(UTC)
    this_month, next_month = month_partition(now), month_partition(now, 1)
    for part in (this_month, next_month):
        event_id = uuid.uuid4()
        _insert_event(conn, event_id, part.start + timedelta(hours=1))
        assert _partition_of(conn, event_id) == part.name


def test_partitions_far_future_event_lands_in_default(conn: Conn) -> None:
    event_id = uuid.uuid4()
    assert _insert_event(conn, event_id, datetime(2100, 1, 15, tzinfo=UTC)) == 1
    assert _partition_of(conn, event_id) == "events_default"


def test_ensure_event_partitions_later_moves_rows_out_of_default(conn: Conn) -> None:
    event_id, ts = uuid.uuid4(), datetime(2100, 1, 15, tzinfo=UTC)
    _insert_event(conn, event_id, ts)
    created = ensure_event_partitions(conn, ts, months_ahead=1, months_behind=0)
    assert created == ["events_p210001", "events_p210002"]
    assert _partition_of(conn, event_id) == "events_p210001"
    assert _scalar(conn, "SELECT count(*) FROM events WHERE id = %s", (event_id,)) == 1
    assert _insert_event(conn, event_id, ts) == 0  # the id is still claimed


def test_ensure_event_partitions_second_call_creates_nothing(conn: Conn) -> None:
    now = datetime.now(UTC)
    assert ensure_event_partitions(conn, now) == []
    next_month = month_partition(now, 1).start
    assert ensure_event_partitions(conn, next_month) == [month_partition(now, 4).name]


def test_month_partition_december_rolls_into_next_year() -> None:
    part = month_partition(datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    assert (part.name, part.start, part.end) == (
        "events_p202512",
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert month_partition(datetime(2026, 1, 1, tzinfo=UTC), -1).name == "events_p202512"


# --- constraints -----------------------------------------------------------------------------------


def _person_with_template(conn: Conn) -> uuid.UUID:
    person = uuid.UUID(str(_scalar(conn, "INSERT INTO people (display_name) VALUES ('Ada') RETURNING id")))
    photo = _scalar(
        conn,
        "INSERT INTO enrollment_photos (person_id, object_key, sha256, width, height, quality, status)"
        " VALUES (%s, 'photos/ada.jpg', %s, 640, 480, 0.9, 'accepted') RETURNING id",
        (person, "a" * 64),
    )
    conn.execute(
        "INSERT INTO templates (person_id, model_id, embedding_size, embedding, source_photo_id)"
        " VALUES (%s, 'sface-2021dec', 128, %s, %s)",
        (person, bytes(512), photo),
    )
    return person


def test_people_delete_cascades_to_photos_and_templates(conn: Conn) -> None:
    person = _person_with_template(conn)
    conn.execute("DELETE FROM people WHERE id = %s", (person,))
    assert _scalar(conn, "SELECT count(*) FROM templates") == 0
    assert _scalar(conn, "SELECT count(*) FROM enrollment_photos") == 0


def test_templates_embedding_of_wrong_length_is_refused(conn: Conn) -> None:
    person = _person_with_template(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO templates (person_id, model_id, embedding_size, embedding)"
            " VALUES (%s, 'sface-2021dec', 128, %s)",
            (person, bytes(511)),
        )


@pytest.mark.parametrize("site", ["galleries", "has/slash", "a" * 65, ""])
def test_sites_id_not_a_topic_segment_is_refused(conn: Conn, site: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'x')", (site,))


def test_edges_broker_hash_not_in_mosquitto_format_is_refused(conn: Conn) -> None:
    conn.execute("INSERT INTO sites (id, name) VALUES ('hq', 'HQ')")
    conn.execute(
        "INSERT INTO edges (site_id, id, broker_password_hash) VALUES ('hq', 'door-1', %s)",
        ("$7$101$c2FsdA==$aGFzaA==",),
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO edges (site_id, id, broker_password_hash) VALUES ('hq', 'door-2', 'plain')")


def test_indexes_named_in_docs_all_exist(conn: Conn) -> None:
    documented = set(re.findall(r"`(\w+)` index", DOC.read_text()))
    rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").fetchall()
    existing = {str(r[0]) for r in rows}
    assert len(documented) >= 14
    assert documented <= existing
    explicit = {name for name in existing if not re.search(r"_(pkey|key)$|^events_(p\d{6}|default)_", name)}
    assert explicit <= documented  # and every index created by name is documented


# --- pools -----------------------------------------------------------------------------------------


def test_open_pool_migrated_database_answers(db: str) -> None:
    with open_pool(db, min_size=1, max_size=2) as pool, pool.connection() as conn:
        assert _scalar(conn, "SELECT count(*) FROM schema_migrations") == len(load_migrations())


def test_open_pool_unmigrated_database_is_refused(postgres_db: PostgresService) -> None:
    with pytest.raises(DatabaseUnavailableError, match="facegate central migrate"):
        open_pool(postgres_db.dsn)


def test_open_async_pool_migrated_database_answers(db: str) -> None:
    async def count() -> object:
        pool = await open_async_pool(db, min_size=1, max_size=2)
        async with pool, pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM sites")
            row = await cur.fetchone()
            return row[0] if row else None

    assert asyncio.run(count()) == 0


def test_open_async_pool_unreachable_server_is_refused(postgres_db: PostgresService) -> None:
    dsn = postgres_db.with_dbname("facegate_no_such_database").dsn
    with pytest.raises(DatabaseUnavailableError, match="did not answer"):
        asyncio.run(open_async_pool(dsn, timeout_s=1.0))
