"""The audit log: who changed what, when (central/audit/repository.py).

Every service writes its entry with `audit.record(conn, ...)` on the connection of the transaction that
makes the change itself, so the change and its entry commit together or not at all.
"""

from central.audit.repository import actor, entries, record, record_sync

__all__ = ["actor", "entries", "record", "record_sync"]
