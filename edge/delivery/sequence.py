"""Per-camera event sequence numbers that survive restarts (a small SQLite file).

Each event gets the next number of its camera before it is written to the outbox. A crash between
the two leaves a gap, never a repeat, so consumers can check order per camera across restarts.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class Sequences:
    """next(camera) -> 1, 2, 3, ... per camera, durable."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seq (camera TEXT PRIMARY KEY, last INTEGER NOT NULL)")
        self._lock = threading.Lock()

    def next(self, camera: str) -> int:
        with self._lock:
            row = self._db.execute(
                "INSERT INTO seq (camera, last) VALUES (?, 1) "
                "ON CONFLICT(camera) DO UPDATE SET last = last + 1 RETURNING last",
                (camera,),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
