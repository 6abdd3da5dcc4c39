"""Central: the Litestar service over PostgreSQL, object storage and Redis (being built)."""
