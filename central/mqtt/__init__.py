"""Central's MQTT client (client.py) and its connection options (options.py); see docs/central-ingest.md."""
