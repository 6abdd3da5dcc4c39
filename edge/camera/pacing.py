"""Frame timing at a camera's reader: the one-slot mailbox, the fps cap, and pacing of files and folders."""

from __future__ import annotations

import math
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """One slot holding the latest item: a new item replaces an untaken one, so a slow consumer never
    builds a backlog (the drop-oldest policy with a queue of one)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> bool:
        """Store `item`; True when it replaced one that was never taken (a dropped item)."""
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify_all()
        return dropped

    def take(self, timeout: float) -> T | None:
        """The latest item, removed from the slot; None when none came within `timeout` seconds or the
        mailbox is closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake every waiting `take`; an item still in the slot can be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class RateCap:
    """Lets at most `fps` items a second through on average; the caller skips the rest.

    Each allowed item moves the next due time one interval on, from the previous due time or from half
    an interval ago, whichever is later: the average rate stays exactly at the cap for a faster source,
    and after a stall at most one item comes early.
    """

    def __init__(self, fps: float | None) -> None:
        self._interval = 1.0 / fps if fps else 0.0
        self._next = -math.inf

    def allow(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = max(self._next, now - self._interval / 2) + self._interval
        return True


class Pacer:
    """Sleeps so successive items come `1 / fps` seconds apart (fps 0: no pacing). A reader that falls
    behind is not made to catch up with a burst: the schedule restarts from now."""

    def __init__(self, fps: float) -> None:
        self._interval = 1.0 / fps if fps > 0 else 0.0
        self._next: float | None = None

    def wait(self, stop: threading.Event) -> None:
        """Wait for the next item's turn, or until `stop` is set."""
        if not self._interval:
            return
        now = time.monotonic()
        due = now if self._next is None else self._next
        if due > now:
            stop.wait(due - now)
        self._next = max(due, now - self._interval) + self._interval

    def restart(self) -> None:
        self._next = None
