"""Event ingest from MQTT into PostgreSQL and object storage; see docs/central-ingest.md."""
