"""Shutdown never hangs on one worker: a task that will not stop, or a stop that never returns, is given
STOP_TIMEOUT_S, logged with where it waits, and left behind while the others stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from central import lifespan
from central.lifespan import Workers


async def stubborn(released: asyncio.Event) -> None:
    """A worker that swallows its cancellation (the bug a bounded shutdown must survive) until the test
    is over."""
    while not released.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)


def test_workers_stop_gives_up_on_a_task_that_ignores_cancellation(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lifespan, "STOP_TIMEOUT_S", 0.2)
    stopped: list[str] = []

    async def main() -> float:
        workers, released = Workers(), asyncio.Event()
        workers.spawn(stubborn(released), "stubborn-worker")
        workers.spawn(asyncio.sleep(3600), "polite-worker")

        async def never_returns() -> None:
            await asyncio.Event().wait()

        async def quick() -> None:
            stopped.append("quick")

        workers.on_stop(quick)
        workers.on_stop(never_returns)
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        await workers.stop()
        elapsed = asyncio.get_running_loop().time() - started
        polite = next(t for t in workers.tasks if t.get_name() == "polite-worker")
        assert polite.cancelled()
        released.set()  # let the test's loop close: a real shutdown leaves it to the process exit
        await asyncio.sleep(0.1)
        return elapsed

    with caplog.at_level(logging.ERROR, logger="central.lifespan"):
        elapsed = asyncio.run(asyncio.wait_for(main(), 5.0))
    assert elapsed < 1.5 and stopped == ["quick"]
    messages = [r.getMessage() for r in caplog.records]
    assert "worker_stop_timed_out" in messages and "worker_did_not_stop" in messages
    stuck = next(r for r in caplog.records if r.getMessage() == "worker_did_not_stop")
    assert getattr(stuck, "task", None) == "stubborn-worker" and "stubborn" in getattr(stuck, "stack", "")
