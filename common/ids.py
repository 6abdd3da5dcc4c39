"""Message ids: UUIDv7 (RFC 9562), time-ordered, unique, used for idempotency."""

from __future__ import annotations

import os
import threading
import time
import uuid


class _Uuid7Clock:
    """Unix milliseconds plus a 12-bit counter, so ids made in one process stay strictly ordered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._counter = 0

    def tick(self) -> tuple[int, int]:
        with self._lock:
            now = time.time_ns() // 1_000_000
            if now <= self._ms:
                self._counter += 1
                if self._counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                    self._ms, self._counter = self._ms + 1, 0
            else:
                self._ms, self._counter = now, 0
            return self._ms, self._counter


_clock = _Uuid7Clock()


def uuid7() -> str:
    """A new UUIDv7 string: 48-bit unix milliseconds, a counter for ids in the same millisecond,
    random bits."""
    ms, counter = _clock.tick()
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))
