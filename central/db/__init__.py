"""Central's PostgreSQL storage: the migration runner, event partitions (and their upkeep) and
connection pools; their SQL is in repository.py.

See docs/central-database.md for the schema and the query each index serves.
"""

from central.db.migrations import MIGRATIONS_DIR, Migration, MigrationError, load_migrations, migrate
from central.db.partitions import (
    MonthPartition,
    ensure_event_partitions,
    keep_event_partitions,
    month_partition,
    planned_partitions,
)
from central.db.pool import DatabaseUnavailableError, open_async_pool, open_pool

__all__ = [
    "MIGRATIONS_DIR",
    "DatabaseUnavailableError",
    "Migration",
    "MigrationError",
    "MonthPartition",
    "ensure_event_partitions",
    "keep_event_partitions",
    "load_migrations",
    "migrate",
    "month_partition",
    "open_async_pool",
    "open_pool",
    "planned_partitions",
]
