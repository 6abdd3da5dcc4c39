"""Redis: probe, the machine's shared server, private local/container instances, per-test databases."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import redis

from devtools.services.endpoints import RedisService
from devtools.services.instance import ServiceInstance
from devtools.services.ports import free_port
from devtools.services.process import LocalProcess
from devtools.services.readiness import NotReadyError, Probe, ServiceStartError, answering

IMAGE = "redis:7-alpine"
SHARED = RedisService(host="127.0.0.1", port=6379)
TEST_DBS = range(1, 16)
"""Database numbers handed to tests on a shared server; 0 is left to other users of the machine's Redis."""


def client(service: RedisService, timeout: float = 5.0) -> redis.Redis:
    """A client for `service` (its db selected) that gives up after `timeout` seconds."""
    return redis.Redis(
        host=service.host,
        port=service.port,
        db=service.db,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )


def probe_for(service: RedisService) -> Probe:
    def probe() -> None:
        conn = client(service, timeout=1.0)
        try:
            conn.ping()
        except redis.RedisError as exc:
            raise NotReadyError(str(exc)) from exc
        finally:
            conn.close()

    return probe


def find_shared() -> RedisService | None:
    """The machine's server on 127.0.0.1:6379, if it answers PING."""
    return answering(SHARED, probe_for(SHARED), SHARED.host, SHARED.port)


def server_args(*, persistence: bool) -> list[str]:
    """No RDB snapshots; with `persistence`, an append-only file whose writes reach the OS before the reply
    (so a SIGKILLed server keeps every acknowledged write)."""
    args = ["--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "everysec"] if persistence else ["--appendonly", "no"]
    return args


def local_instance(
    workdir: Path, *, persistence: bool = False, extra_args: Sequence[str] = (), ready_timeout: float = 15.0
) -> ServiceInstance[RedisService]:
    """redis-server on 127.0.0.1:<free port>, working directory (RDB/AOF files) in `workdir`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceStartError("redis-server not found on PATH; run scripts/ensure-services.sh")
    service = RedisService(host="127.0.0.1", port=free_port())
    argv = [binary, "--port", str(service.port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    argv += ["--daemonize", "no", *server_args(persistence=persistence), *extra_args]
    return ServiceInstance(
        f"redis@{service.port}",
        service,
        LocalProcess(argv, workdir / "redis.log", cwd=workdir),
        probe_for(service),
        workdir=workdir,
        data_dir=str(workdir),
        ready_timeout=ready_timeout,
    )


def container_instance(
    workdir: Path, *, persistence: bool = False, extra_args: Sequence[str] = ()
) -> ServiceInstance[RedisService]:
    from testcontainers.core.container import DockerContainer

    from devtools.services.docker import container_instance as wrap

    argv = ["redis-server", *server_args(persistence=persistence), *extra_args]
    return wrap(
        "redis-container",
        DockerContainer(IMAGE).with_command(argv),
        container_port=6379,
        make_endpoint=lambda host, port: RedisService(host=host, port=port),
        make_probe=probe_for,
        workdir=workdir,
        data_dir="/data",
    )


CLAIM_KEY = "facegate-test:claim:{db}"
CLAIM_TTL_S = 1800
"""A claim (in db 0) outlives no test: a killed run's claims expire, a finished test deletes its own."""


def claim_database(server: RedisService) -> RedisService:
    """`server` narrowed to an empty database from TEST_DBS, with a unique key prefix for this test.

    The claim is atomic (SET NX of a key in db 0), so parallel test processes (pytest-xdist workers,
    two suites on one machine) never share a database number."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    admin = client(server)
    try:
        for db in TEST_DBS:
            candidate = RedisService(host=server.host, port=server.port, db=db, key_prefix=prefix)
            if not admin.set(CLAIM_KEY.format(db=db), prefix, nx=True, ex=CLAIM_TTL_S):
                continue
            conn = client(candidate)
            try:
                if conn.dbsize() == 0:
                    return candidate
            except redis.ResponseError:
                admin.delete(CLAIM_KEY.format(db=db))
                break  # `databases` is configured lower than this number
            finally:
                conn.close()
            admin.delete(CLAIM_KEY.format(db=db))  # not empty: left by someone else
    finally:
        admin.close()
    raise RuntimeError(
        f"no free empty Redis database among {TEST_DBS.start}..{TEST_DBS.stop - 1} on "
        f"{server.host}:{server.port}; flush stale test data or set FACEGATE_TEST_REUSE_LOCAL=0 to use "
        "a private server"
    )


def release_database(service: RedisService) -> None:
    """FLUSHDB on the test's own database only, then give its number back."""
    conn = client(service)
    try:
        conn.flushdb()
    finally:
        conn.close()
    admin = client(RedisService(host=service.host, port=service.port))
    try:
        if admin.get(CLAIM_KEY.format(db=service.db)) == service.key_prefix.encode():
            admin.delete(CLAIM_KEY.format(db=service.db))
    finally:
        admin.close()
