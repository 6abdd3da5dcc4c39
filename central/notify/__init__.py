"""Deliveries of watch-rule matches: the outbox written with the events (`enqueue`), the worker that
sends them (`worker`), its channels (`webhook`, `email`, MQTT), the SSRF policy (`targets`), signing
(`signing`), and the delivery log API (`routes`/`service`/`repository`/`schemas`). docs/notifications.md.
"""
