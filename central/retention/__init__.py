"""Retention: per-site policies for events (and their embeddings), crops, dead letters and the delivery
log, a global one for the audit log, applied by central itself (docs/retention.md). `policy` (pure:
effective policies, cut-offs, which partitions may go), `schemas`, `repository`, `service` and `routes`
(the API), `runner` (the worker, one replica at a time under an advisory lock)."""
