"""The outbox: a durable SQLite queue that keeps every event until central's receipt names it.

Every event is committed here before it is published. A row is `pending` until the broker acknowledges
its publish (PUBACK), then `sent`; it is deleted only when a receipt from central confirms it. Sent rows
without a receipt come back from `next_batch` after `resend_after_s` (central ignores duplicates by id).

Durability settings:

- `journal_mode=WAL`: a writer appends to the write-ahead log and never blocks readers; a commit is one
  sequential write (plus an fsync under FULL) instead of rewriting database pages, and the database is
  never left half-written by a crash (readers see the last committed state).
- `synchronous=FULL` (the default): every commit fsyncs the WAL before `put` returns, so a committed
  row survives a power loss or kernel panic as well as a process crash. Costs one fsync per event.
- `synchronous=NORMAL`: the WAL is fsynced only at checkpoints. A committed row still survives the
  process being killed (the data is in the OS page cache), but a power loss may lose the last
  transactions. Several times faster on slow storage (SD cards); choose it only with a UPS or where
  losing the last second of events on power loss is acceptable.

Bounds: `max_rows` and `max_bytes` (payload bytes). When full, `drop_oldest` deletes the oldest rows
to make room and `drop_newest` refuses the new event; either way every dropped event is counted in a
persisted counter. Rows are handed out in insertion order (`seq`), which keeps each camera's order.
One connection guarded by a lock: the outbox may be shared between threads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from common.errors import ConfigError, FacegateError

SyncMode = Literal["FULL", "NORMAL"]
WhenFull = Literal["drop_oldest", "drop_newest"]
_CHUNK = 500  # ids per IN (...) statement

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL UNIQUE,
    camera   TEXT NOT NULL,
    topic    TEXT NOT NULL,
    payload  BLOB NOT NULL,
    created  REAL NOT NULL,
    state    TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent')),
    sent_at  REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, sent_at, seq);
CREATE TABLE IF NOT EXISTS outbox_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_COLUMNS = "id, camera, seq, topic, payload, created, state, sent_at, attempts"


class OutboxError(FacegateError):
    """The outbox database cannot be opened or used."""


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """Bounds and durability; see the module docstring for the trade-offs."""

    max_rows: int = 100_000
    max_bytes: int = 512 * 1024 * 1024
    when_full: WhenFull = "drop_oldest"
    resend_after_s: float = 30.0
    synchronous: SyncMode = "FULL"

    def __post_init__(self) -> None:
        if self.synchronous not in ("FULL", "NORMAL"):
            raise ConfigError(f"outbox.synchronous must be FULL or NORMAL, not {self.synchronous!r}")
        if self.when_full not in ("drop_oldest", "drop_newest"):
            raise ConfigError(f"outbox.when_full must be drop_oldest or drop_newest, not {self.when_full!r}")
        if self.max_rows < 1 or self.max_bytes < 1 or self.resend_after_s <= 0:
            raise ConfigError("outbox.max_rows, outbox.max_bytes and outbox.resend_after_s must be positive")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: str
    camera: str
    seq: int  # insertion order, never reused
    topic: str
    payload: bytes
    created: float  # unix seconds
    state: Literal["pending", "sent"]
    sent_at: float | None
    attempts: int  # how often the broker acknowledged it


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int  # rows held (pending and sent)
    unconfirmed: int  # sent, waiting for central's receipt
    bytes: int  # payload bytes held
    resends: int  # publishes acknowledged again for a row already acknowledged before (persisted)
    drops: int  # events dropped or refused because the outbox was full (persisted)


class Outbox:
    """Use as a context manager, or call open() and close(). The constructor does no I/O."""

    def __init__(
        self,
        path: Path | str,
        settings: OutboxSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.settings = settings or OutboxSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._rows = self._bytes = self._resends = self._drops = 0

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> Self:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.settings.synchronous}")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            self._rows, self._bytes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM outbox"
            ).fetchone()
            counters = dict(db.execute("SELECT name, value FROM outbox_counters").fetchall())
        except sqlite3.Error as err:
            raise OutboxError(f"cannot open the outbox {self.path}: {err}") from err
        self._resends, self._drops = counters.get("resends", 0), counters.get("drops", 0)
        self._db = db
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def put(self, event_id: str, camera: str, topic: str, payload: bytes) -> bool:
        """Commit one event; False when it was already there or refused because the outbox is full."""
        size = len(payload)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM outbox WHERE id = ?", (event_id,)).fetchone():
                return False
            if not self._make_room(db, size):
                self._count(db, "drops", 1)
                return False
            db.execute(
                "INSERT INTO outbox (id, camera, topic, payload, created) VALUES (?, ?, ?, ?, ?)",
                (event_id, camera, topic, payload, self._clock()),
            )
            self._rows += 1
            self._bytes += size
            return True

    def next_batch(self, limit: int) -> list[OutboxRow]:
        """Up to `limit` rows to publish, oldest first: pending ones and sent ones due for a resend."""
        due = self._clock() - self.settings.resend_after_s
        with self._tx() as db:
            pending = db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            resend = db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = 'sent' AND sent_at <= ? ORDER BY seq LIMIT ?",
                (due, limit),
            ).fetchall()
        rows = sorted(pending + resend, key=lambda row: row[2])[:limit]
        return [OutboxRow(*row) for row in rows]

    def mark_sent(self, ids: Sequence[str]) -> int:
        """The broker acknowledged these publishes; returns how many rows were still there."""
        now = self._clock()
        marked = 0
        with self._tx() as db:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                again = db.execute(
                    f"SELECT COUNT(*) FROM outbox WHERE attempts > 0 AND id IN ({marks})", chunk
                )
                self._count(db, "resends", again.fetchone()[0])
                update = "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1"
                marked += db.execute(f"{update} WHERE id IN ({marks})", (now, *chunk)).rowcount
        return marked

    def confirm(self, ids: Iterable[str]) -> int:
        """Central committed these events: delete them. Unknown ids are ignored; returns rows deleted."""
        deleted = 0
        with self._tx() as db:
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                sizes = db.execute(
                    f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING length(payload)", chunk
                )
                freed = [size for (size,) in sizes.fetchall()]
                deleted += len(freed)
                self._rows -= len(freed)
                self._bytes -= sum(freed)
        return deleted

    def resend_all(self) -> int:
        """Return every sent, unconfirmed row to pending (after a reconnect: the broker may have lost it)."""
        with self._tx() as db:
            return db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sent'").rowcount

    def stats(self) -> OutboxStats:
        with self._tx() as db:
            (unconfirmed,) = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'sent'").fetchone()
            return OutboxStats(self._rows, unconfirmed, self._bytes, self._resends, self._drops)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; in-memory totals roll back with the database."""
        with self._lock:
            if self._db is None:
                raise OutboxError(f"the outbox {self.path} is not open")
            saved = (self._rows, self._bytes, self._resends, self._drops)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._rows, self._bytes, self._resends, self._drops = saved
                if isinstance(err, sqlite3.Error):
                    raise OutboxError(f"outbox {self.path}: {err}") from err
                raise

    def _make_room(self, db: sqlite3.Connection, size: int) -> bool:
        """Ensure one more row of `size` bytes fits: evict the oldest rows, or refuse (drop_newest)."""
        need_rows = self._rows + 1 - self.settings.max_rows
        need_bytes = self._bytes + size - self.settings.max_bytes
        if need_rows <= 0 and need_bytes <= 0:
            return True
        if self.settings.when_full == "drop_newest" or size > self.settings.max_bytes:
            return False
        last, rows, freed = 0, 0, 0
        for seq, length in db.execute("SELECT seq, length(payload) FROM outbox ORDER BY seq"):
            last, rows, freed = seq, rows + 1, freed + length
            if rows >= need_rows and freed >= need_bytes:
                break
        db.execute("DELETE FROM outbox WHERE seq <= ?", (last,))
        self._rows -= rows
        self._bytes -= freed
        self._count(db, "drops", rows)
        return True

    def _count(self, db: sqlite3.Connection, name: Literal["resends", "drops"], n: int) -> None:
        if n <= 0:
            return
        db.execute(
            "INSERT INTO outbox_counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )
        if name == "resends":
            self._resends += n
        else:
            self._drops += n


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
