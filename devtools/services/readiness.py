"""Waiting for a freshly started service to answer, with errors that carry the service's log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from devtools.services.ports import port_is_listening

T = TypeVar("T")
Probe = Callable[[], None]
"""Checks the service once with a real client request; raises NotReadyError when it does not answer yet."""


class NotReadyError(Exception):
    """Raised by a Probe: the service did not (yet) answer properly. The message says why."""


class ServiceStartError(RuntimeError):
    """A service could not be prepared or did not become ready; the message ends with its log tail."""

    def __init__(self, message: str, log: str = "", tail_lines: int = 40) -> None:
        tail = "\n".join(log.rstrip().splitlines()[-tail_lines:])
        if tail:
            message = f"{message}\n--- last {tail_lines} log lines ---\n{tail}"
        super().__init__(message)


class Watched(Protocol):
    """What readiness polling needs to know about the thing it started."""

    def is_running(self) -> bool: ...

    def logs(self) -> str: ...


def wait_until_ready(name: str, probe: Probe, watched: Watched, timeout: float) -> None:
    """Poll `probe` until it passes; fail fast if the process died, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last_error = "not probed yet"
    while True:
        try:
            probe()
        except NotReadyError as exc:
            last_error = str(exc) or type(exc).__name__
        else:
            return
        if not watched.is_running():
            raise ServiceStartError(
                f"{name} exited before it became ready (last probe: {last_error})", watched.logs()
            )
        if time.monotonic() >= deadline:
            raise ServiceStartError(
                f"{name} not ready after {timeout:.0f}s (last probe: {last_error})", watched.logs()
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until true; raise TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(0.02)


def answering(endpoint: T, probe: Probe, host: str, port: int) -> T | None:
    """`endpoint` when something listens on host:port and passes `probe`, else None."""
    if not port_is_listening(host, port):
        return None
    try:
        probe()
    except NotReadyError:
        return None
    return endpoint
