"""ServiceInstance: one private server (local process or container) with start/stop/kill/restart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from devtools.services.readiness import Probe, wait_for, wait_until_ready

E = TypeVar("E")
_log = logging.getLogger(__name__)


class Backend(Protocol):
    """How a server is run: `process.LocalProcess` or `docker.ContainerBackend` (devtools.services)."""

    def launch(self) -> None: ...

    def terminate(self, timeout: float) -> None: ...

    def kill(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def is_running(self) -> bool: ...

    def logs(self) -> str: ...

    def read_file(self, path: str) -> bytes | None: ...

    def close(self) -> None: ...


class ServiceInstance(Generic[E]):
    """A private server owned by one test. `endpoint` (host, port, credentials) never changes,
    so a client's connection settings stay valid across kill()/restart(). `workdir` (in tmp_path) holds
    config and log; the server's data lives in `data_dir` (a host path, or a path inside the container)
    and survives restarts as far as the server itself persists it.
    """

    def __init__(
        self,
        name: str,
        endpoint: E,
        backend: Backend,
        probe: Probe,
        *,
        workdir: Path,
        data_dir: str,
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.workdir = workdir
        self.data_dir = data_dir
        self._backend = backend
        self._probe = probe
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._cleanup = cleanup
        self._closed = False

    def __repr__(self) -> str:
        return f"ServiceInstance({self.name!r}, {self.endpoint!r}, running={self.running})"

    @property
    def running(self) -> bool:
        return self._backend.is_running()

    def start(self) -> E:
        """Start the server (again) on the same port with the same data, and wait until it answers."""
        if self._closed:
            raise RuntimeError(f"{self.name} was closed")
        if self.running:
            raise RuntimeError(f"{self.name} is already running; use restart()")
        self._backend.launch()
        wait_until_ready(self.name, self._probe, self._backend, self._ready_timeout)
        return self.endpoint

    def stop(self) -> None:
        """Clean shutdown (SIGTERM, or SIGINT for PostgreSQL); escalates to SIGKILL after stop_timeout."""
        self._backend.terminate(self._stop_timeout)

    def kill(self) -> None:
        """SIGKILL the server and everything it spawned, like a crash or `docker kill`; returns once gone."""
        self._backend.kill()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP / `docker pause`): connections stay open, nothing is answered."""
        self._backend.pause()

    def resume(self) -> None:
        """Undo pause()."""
        self._backend.resume()

    def restart(self) -> E:
        """stop() if still running, then start()."""
        if self.running:
            self.stop()
        return self.start()

    def logs(self) -> str:
        """Everything the server logged so far, across restarts."""
        return self._backend.logs()

    def read_data_file(self, name: str) -> bytes | None:
        """Current content of `data_dir`/`name` (None if it does not exist), e.g. to see what is on disk."""
        return self._backend.read_file(f"{self.data_dir.rstrip('/')}/{name}")

    def wait_for_log(self, needle: str, *, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `needle` occurs at least `count` times in the log."""
        wait_for(
            lambda: self.logs().count(needle) >= count, timeout, f"{count}x {needle!r} in {self.name} log"
        )

    def close(self) -> None:
        """Kill the server if needed and remove what it left outside the test's tmp_path. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._backend.close()
        finally:
            if self._cleanup is not None:
                self._cleanup()
        _log.debug("closed %s", self.name)
