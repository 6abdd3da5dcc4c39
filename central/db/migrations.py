"""The migration runner: plain SQL files applied in order, each once, recorded in `schema_migrations`.

Files are `NNNN_name.sql` in one directory (default: the `migrations/` folder beside this module).
Each pending file runs in its own transaction together with the row that records it (name, sha256
of the file's bytes, applied_at). A session-level advisory lock serialises runners, so replicas that
start together apply every migration exactly once: the others wait, then find nothing pending.
An applied file whose bytes changed is refused; write a new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from central.db import repository as repo
from central.db.partitions import ensure_event_partitions
from central.db.vectors import ensure_vector_search
from common.errors import FacegateError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_lock key held while migrating: "facegate" in ASCII, as a signed 64-bit integer.
MIGRATION_LOCK_KEY = 0x6661636567617465
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


class MigrationError(FacegateError):
    """The migrations cannot be applied: a bad file, a changed applied file, or a failing statement."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: its name (`0001_core.sql`), its bytes and their sha256 (hex)."""

    name: str
    sql: bytes
    sha256: str


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every `NNNN_name.sql` file of `directory`, in order; other `.sql` names are refused."""
    directory = MIGRATIONS_DIR if directory is None else directory
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: dict[str, Migration] = {}
    numbers: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"migration file {path} must be named NNNN_lowercase_name.sql")
        if match.group(1) in numbers:
            raise MigrationError(
                f"migrations {numbers[match.group(1)]} and {path.name} share the number {match.group(1)}"
            )
        numbers[match.group(1)] = path.name
        sql = path.read_bytes()
        found[path.name] = Migration(path.name, sql, hashlib.sha256(sql).hexdigest())
    return [found[name] for name in sorted(found)]


def migrate(
    dsn: str,
    directory: Path | None = None,
    *,
    now: datetime | None = None,
    lock_timeout_s: float = 300.0,
) -> list[str]:
    """Apply the pending migrations of `directory` to the database at `dsn`; return their names.

    Then make sure the monthly event partitions around `now` (default: the current time) exist, and
    pgvector search is on where the server offers the extension (central/db/vectors.py).
    Waits at most `lock_timeout_s` for another runner to finish.
    """
    migrations = load_migrations(directory)
    try:
        with psycopg.connect(dsn, autocommit=True, application_name="facegate-migrate") as conn:
            _lock(conn, lock_timeout_s)
            try:
                repo.create_migrations_table(conn)
                applied = _check_applied(conn, migrations)
                done = [_apply(conn, m) for m in migrations if m.name not in applied]
                if repo.has_events_table(conn):
                    ensure_event_partitions(conn, now or datetime.now(UTC))
                ensure_vector_search(conn)
            finally:
                repo.unlock_session(conn, MIGRATION_LOCK_KEY)
    except psycopg.OperationalError as err:
        raise MigrationError(f"database connection failed while migrating: {err}") from err
    return done


def _lock(conn: psycopg.Connection[tuple[object, ...]], timeout_s: float) -> None:
    try:
        repo.lock_session(conn, MIGRATION_LOCK_KEY, timeout_s)
    except psycopg.errors.LockNotAvailable as err:
        raise MigrationError(
            f"another migration runner held the lock for over {timeout_s:g} s; "
            "check for a stuck `facegate central migrate` and retry"
        ) from err


def _check_applied(conn: psycopg.Connection[tuple[object, ...]], migrations: list[Migration]) -> set[str]:
    applied = repo.applied_migrations(conn)
    for m in migrations:
        if m.name in applied and applied[m.name] != m.sha256:
            raise MigrationError(
                f"migration {m.name} was changed after it was applied (sha256 {m.sha256}, "
                f"applied {applied[m.name]}): restore the file and put the change in a new migration"
            )
    unknown = sorted(set(applied) - {m.name for m in migrations})
    if unknown:
        # A newer release migrated this database (a rolling upgrade): fine while migrations only add.
        log.warning("migrations_unknown_applied", extra={"migrations": unknown})
    return set(applied)


def _apply(conn: psycopg.Connection[tuple[object, ...]], migration: Migration) -> str:
    try:
        repo.apply_migration(conn, migration.name, migration.sql, migration.sha256)
    except psycopg.Error as err:
        raise MigrationError(f"migration {migration.name} failed and was rolled back: {err}") from err
    log.info("migration_applied", extra={"migration": migration.name})
    return migration.name
