"""What the edges send over MQTT, into PostgreSQL and object storage: events (ingest) and their status and
heartbeats (fleet state); see docs/central-ingest.md."""
