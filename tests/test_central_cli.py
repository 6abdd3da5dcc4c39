"""`facegate central migrate` as a real process against a real, empty PostgreSQL database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

from tests.services import PostgresService

FACEGATE = str(Path(sys.executable).parent / "facegate")


def test_central_migrate_empty_database_then_no_op(postgres_db: PostgresService) -> None:
    first = subprocess.run(
        [FACEGATE, "central", "migrate", "--database-url", postgres_db.dsn],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert "applied 0001_core.sql" in first.stdout
    again = subprocess.run(
        [FACEGATE, "central", "migrate"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"FACEGATE_DATABASE_URL": postgres_db.dsn, "PATH": "/usr/bin:/bin"},
    )
    assert again.returncode == 0 and "0 migration(s) applied" in again.stdout
    with psycopg.connect(postgres_db.dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names[0] == "0001_core.sql" and len(names) == len(set(names))


def test_central_migrate_without_database_exits_3() -> None:
    proc = subprocess.run(
        [FACEGATE, "central", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 3 and "FACEGATE_DATABASE_URL" in proc.stderr
