"""Which ingest errors are a dependency failing (retry the batch) and which are one message's (dead-letter
it).

One message's fault: PostgreSQL refusing that row's values (SQLSTATE class 22 data exception, 23
integrity constraint, 54 program limit exceeded, such as an index entry too large), a value psycopg
itself cannot adapt, and any error that is not PostgreSQL's, the pool's, object storage's or the
network's (OverflowError, RecursionError, ValueError, anything). The consumer splits the batch in halves
until the one message that fails alone is found and dead-letters it; the rest of the batch is stored
and acknowledged.

A dependency failing: every other PostgreSQL error (connection lost or refused, shutdown, resources,
serialization, but also a missing privilege or table: a deployment fault must never turn every event
into a dead letter), a pool timeout, object storage or the network failing. The batch is retried and
`GET /ready/ingest` shows the stall.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

from central.storage import StorageError

MESSAGE_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


def transient(err: BaseException) -> bool:
    """Whether `err` is a dependency failing (retry the same batch later), not a message's fault."""
    if isinstance(err, psycopg.Error):
        state = err.sqlstate
        if state is None:  # raised by psycopg itself: the connection (lost, closed) or a value
            return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)
        return state[:2] not in MESSAGE_SQLSTATE_CLASSES
    return isinstance(err, PoolTimeout | StorageError | OSError)


def refused_for_good(err: BaseException) -> bool:
    """Whether PostgreSQL refused the message's values (it would refuse them every time): only then is
    the edge told to drop the event (`Receipt.rejected`). An unexpected error dead-letters the message
    without telling the edge, which resends it: a fault of central's never deletes edges' events."""
    return isinstance(err, psycopg.Error) and (err.sqlstate or "")[:2] in MESSAGE_SQLSTATE_CLASSES


def describe(err: BaseException) -> str:
    """A dead letter's detail: the error's type and the first line of its message (at most 500 chars)."""
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"[:500]
