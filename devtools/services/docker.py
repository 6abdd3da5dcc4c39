"""Docker mode: decide whether to use testcontainers, and run a service as a restartable container."""

from __future__ import annotations

import functools
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from docker.errors import DockerException, NotFound  # type: ignore[import-untyped]  # docker-py ships no stubs

from devtools.services.instance import ServiceInstance
from devtools.services.ports import free_port
from devtools.services.readiness import Probe, wait_for

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

E = TypeVar("E")

ENV_DOCKER = "FACEGATE_TEST_DOCKER"
"""auto (default): use Docker when an engine answers a ping; 1: require Docker; 0: never use Docker."""

DEFAULT_SOCKET = Path("/var/run/docker.sock")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@functools.cache
def docker_enabled() -> bool:
    """Whether this test session runs its services in containers (decided once per process)."""
    mode = os.environ.get(ENV_DOCKER, "auto").strip().lower()
    if mode in _FALSE:
        return False
    if mode not in _TRUE | {"", "auto"}:
        raise ValueError(f"{ENV_DOCKER}={mode!r}: expected 0, 1 or auto")
    reachable, reason = engine_reachable()
    if mode in _TRUE and not reachable:
        raise RuntimeError(f"{ENV_DOCKER}={mode} but no Docker engine is reachable: {reason}")
    return reachable


def engine_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """Ping the engine the way testcontainers reaches it (DOCKER_HOST, ~/.testcontainers.properties,
    docker context, else the default socket)."""
    from testcontainers.core.docker_client import DockerClient, get_docker_host

    if get_docker_host() is None and not DEFAULT_SOCKET.exists():
        return False, f"DOCKER_HOST is not set and {DEFAULT_SOCKET} does not exist"
    try:
        client = DockerClient(timeout=timeout)
    except (DockerException, OSError) as exc:
        return False, str(exc)
    try:
        client.client.ping()
    except (DockerException, OSError) as exc:
        return False, str(exc)
    finally:
        client.client.close()
    return True, "ping ok"


class ContainerBackend:
    """Runs one testcontainers container; kill() is `docker kill -s KILL`, launch() after that restarts the
    same container, so its filesystem (and anonymous volumes) and its pinned host port are kept."""

    def __init__(self, container: DockerContainer) -> None:
        self._container = container
        self._created = False

    def launch(self) -> None:
        if not self._created:
            self._container.start()  # pulls the image, creates and starts the container
            self._created = True
        else:
            self._container.get_wrapped_container().start()

    def is_running(self) -> bool:
        if not self._created:
            return False
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")

    def terminate(self, timeout: float) -> None:
        if self.is_running():
            self._container.get_wrapped_container().stop(timeout=max(1, round(timeout)))

    def pause(self) -> None:
        self._container.get_wrapped_container().pause()

    def resume(self) -> None:
        self._container.get_wrapped_container().unpause()

    def kill(self) -> None:
        if self.is_running():
            self._container.get_wrapped_container().kill(signal="SIGKILL")
        wait_for(lambda: not self.is_running(), 30.0, "the killed container to stop")

    def logs(self) -> str:
        if not self._created:
            return ""
        raw: bytes = self._container.get_wrapped_container().logs()
        return raw.decode(errors="replace")

    def read_file(self, path: str) -> bytes | None:
        """Read a file inside the container (also while it is stopped), via the archive API."""
        if not self._created:
            return None
        try:
            chunks, _ = self._container.get_wrapped_container().get_archive(path)
        except NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            member = archive.extractfile(archive.getmembers()[0])
            return None if member is None else member.read()

    def close(self) -> None:
        if self._created:
            self._container.stop()  # force-removes the container and its anonymous volumes


def container_instance(
    name: str,
    container: DockerContainer,
    *,
    container_port: int,
    make_endpoint: Callable[[str, int], E],
    make_probe: Callable[[E], Probe],
    workdir: Path,
    data_dir: str,
) -> ServiceInstance[E]:
    """Wrap `container` (not started) as a ServiceInstance whose port stays the same across restarts.

    The host port is pinned to a free local port, which assumes the tests run on the Docker host
    itself (testcontainers' default connection mode), not inside another container.
    """
    host_port = free_port()
    container.with_bind_ports(container_port, host_port)
    endpoint = make_endpoint(container.get_docker_client().host(), host_port)
    return ServiceInstance(
        name,
        endpoint,
        ContainerBackend(container),
        make_probe(endpoint),
        workdir=workdir,
        data_dir=data_dir,
        ready_timeout=120.0,
    )
