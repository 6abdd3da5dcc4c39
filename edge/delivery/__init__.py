"""Durable delivery of events to central: the SQLite outbox that keeps each event until central's receipt
names it (`outbox`), the MQTT client with acknowledged publishes (`mqtt`), the publisher that moves outbox
rows to the broker and sends heartbeats (`publisher`), and per-camera event numbers (`sequence`)."""
