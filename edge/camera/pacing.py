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

    def would_allow(self, now: float) -> bool:
        """Whether `allow(now)` would let an item through, without counting one."""
        return now >= self._next

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


class Arrivals:
    """When the next frame of a file or stream is due, from the spacing of the last ones (a moving
    average), so the fps cap can decide before the frame is decoded into an image."""

    def __init__(self) -> None:
        self._last: float | None = None
        self.gap = 0.0  # seconds between frames, averaged

    def seen(self, now: float) -> None:
        if self._last is not None:
            gap = min(1.0, max(0.0, now - self._last))
            self.gap = gap if self.gap == 0.0 else 0.8 * self.gap + 0.2 * gap
        self._last = now

    def due(self, now: float) -> float:
        """When the next frame should come: not before now."""
        return now if self._last is None else max(now, self._last + self.gap)


def grab_only(cap: RateCap, arrivals: Arrivals, now: float) -> bool:
    """Whether the cap will drop the next frame even a quarter of a frame after it is due: then it need
    not be converted into an image. A frame grabbed only by mistake costs little: the cap lets the next
    one through, and its average rate holds for frames up to half an interval late."""
    return not cap.would_allow(arrivals.due(now) + arrivals.gap / 4)
