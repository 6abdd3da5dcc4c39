"""What a backup or a restore asks the database itself: its server version, the migrations applied, and
whether it is empty (a restore refuses a database that is not)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from central.backup.manifest import BackupError


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    version_num: int
    migrations: list[str]
    retention: dict[str, Any] | None = None
    """The retention policies in force (defaults and each site's own values); None before migration 0042."""

    @property
    def major(self) -> int:
        return self.version_num // 10000


def server_info(dsn: str) -> ServerInfo:
    """The server's version and the applied migrations (none when the database was never migrated)."""
    with _connect(dsn) as conn:
        version = str(_one(conn, "SHOW server_version"))
        num = int(str(_one(conn, "SHOW server_version_num")))
        names: list[str] = []
        if conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone() == (True,):
            names = [str(r[0]) for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
        retention = _retention(conn)
    return ServerInfo(version, num, names, retention)


def _retention(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, Any] | None:
    if conn.execute("SELECT to_regclass('retention_defaults') IS NOT NULL").fetchone() != (True,):
        return None
    row = conn.execute(
        "SELECT json_build_object("
        " 'defaults', (SELECT row_to_json(d) FROM (SELECT events_days, crops_days, audit_days,"
        " dead_letters_days, deliveries_days FROM retention_defaults) d),"
        " 'sites', (SELECT coalesce(json_object_agg(site_id, json_build_object('events_days', events_days,"
        " 'crops_days', crops_days, 'dead_letters_days', dead_letters_days, 'deliveries_days',"
        " deliveries_days)), '{}') FROM retention_policies))"
    ).fetchone()
    return dict(row[0]) if row and isinstance(row[0], dict) else None


def _connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(dsn, autocommit=True, application_name="facegate-backup")
    except psycopg.OperationalError as err:
        raise BackupError(f"cannot connect to the database (check FACEGATE_DATABASE_URL): {err}") from err


def _one(conn: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = conn.execute(query.encode()).fetchone()
    if row is None:
        raise BackupError(f"{query!r} returned no row")
    return row[0]


def database_is_empty(dsn: str) -> bool:
    """True when the database has no table, view or sequence outside the system schemas."""
    with _connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        ).fetchone()
    return row is not None and row[0] == 0
