"""Exponential backoff for anything that reconnects: the MQTT client, camera streams."""

from __future__ import annotations

import random


class Backoff:
    """Delays from `low` growing by `factor` up to `high`; with `jitter` each is drawn in [half, full].

    `next()` gives the wait after one more failure, `reset()` forgets the failures (after a success).
    """

    def __init__(
        self,
        low: float,
        high: float,
        *,
        factor: float = 2.0,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < low <= high or factor < 1:
            raise ValueError(f"backoff needs 0 < low <= high and factor >= 1, got {low}, {high}, {factor}")
        self.low, self.high, self.factor, self.jitter = low, high, factor, jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def peek(self) -> float:
        """The cap of the next delay (without jitter), without counting a failure."""
        return float(min(self.high, self.low * self.factor ** min(self.failures, 64)))

    def next(self) -> float:
        cap = self.peek()
        self.failures += 1
        return self._rng.uniform(cap / 2, cap) if self.jitter else cap

    def reset(self) -> None:
        self.failures = 0
