"""Which ingest errors retry the batch (a dependency failing) and which dead-letter one message
(central/ingest/isolation.py)."""

from __future__ import annotations

import psycopg
import psycopg.errors as pg
import pytest
from psycopg_pool import PoolTimeout

from central.ingest.isolation import describe, refused_for_good, transient
from central.storage import StorageError


@pytest.mark.parametrize(
    "err",
    [
        psycopg.OperationalError("connection refused"),
        psycopg.InterfaceError("the connection is closed"),
        pg.AdminShutdown("terminating connection"),
        pg.CannotConnectNow("the database system is starting up"),
        pg.SerializationFailure("could not serialize"),
        pg.TooManyConnections("too many clients"),
        pg.InsufficientPrivilege("permission denied"),  # a deployment fault: never dead-letter all
        pg.UndefinedTable("relation does not exist"),
        PoolTimeout("no connection in 30 s"),
        StorageError("S3 unreachable"),
        ConnectionResetError("reset"),
    ],
)
def test_isolation_dependency_failures_transient(err: Exception) -> None:
    assert transient(err)


@pytest.mark.parametrize(
    "err",
    [
        pg.ProgramLimitExceeded("index row size exceeds maximum"),
        pg.NumericValueOutOfRange("out of range"),
        pg.UniqueViolation("duplicate key"),
        psycopg.DataError("raised by psycopg while adapting a value"),
        OverflowError("date value out of range"),
        RecursionError("maximum recursion depth exceeded"),
        ValueError("bad"),
    ],
)
def test_isolation_message_faults_not_transient(err: Exception) -> None:
    """Guards issue 13 findings 1 and 2: ProgramLimitExceeded (an OperationalError) was retried forever
    with its batch, and OverflowError or RecursionError left the batch unacknowledged."""
    assert not transient(err)


def test_isolation_only_postgres_refusing_values_is_told_to_the_edge() -> None:
    assert refused_for_good(pg.ProgramLimitExceeded("too big"))
    assert refused_for_good(pg.NumericValueOutOfRange("out of range"))
    assert not refused_for_good(RecursionError("deep"))  # unexpected: dead letter only, edge resends
    assert not refused_for_good(psycopg.DataError("no SQLSTATE"))


def test_isolation_describe_names_the_type_and_first_line() -> None:
    assert describe(pg.ProgramLimitExceeded("index row too big\nDETAIL: x")) == (
        "ProgramLimitExceeded: index row too big"
    )
