"""Which ingest errors are a dependency failing (retry the batch) and which are one message's (dead-letter
it).

A dependency failing: PostgreSQL unreachable or restarting (no SQLSTATE, class 08 connection, 53
insufficient resources, 57 operator intervention, 58 system error, 40 a serialization failure or
deadlock), the pool timing out, object storage or the network failing. Everything else (DataError,
IntegrityError, ProgramLimitExceeded, OverflowError, RecursionError, ValueError, anything) is taken to
be caused by a message of the batch: the consumer splits the batch in halves until the one message is
found and dead-lettered, and the rest of the batch is stored and acknowledged.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

from central.storage import StorageError

TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def transient(err: BaseException) -> bool:
    """Whether `err` is a dependency failing (retry the same batch later), not a message's fault."""
    if isinstance(err, psycopg.Error):
        state = err.sqlstate
        return state is None or state[:2] in TRANSIENT_SQLSTATE_CLASSES
    return isinstance(err, PoolTimeout | StorageError | OSError)


def describe(err: BaseException) -> str:
    """A dead letter's detail: the error's type and the first line of its message (at most 500 chars)."""
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"[:500]
