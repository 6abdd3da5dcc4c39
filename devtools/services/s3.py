"""S3: a private moto_server or MinIO per session or per test; there is no shared machine-wide one."""

from __future__ import annotations

import http.client
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Literal

from minio import Minio

from devtools.services.endpoints import S3Service
from devtools.services.instance import ServiceInstance
from devtools.services.ports import free_port
from devtools.services.process import LocalProcess
from devtools.services.readiness import NotReadyError, Probe, ServiceStartError

ENV_S3 = "FACEGATE_TEST_S3"
"""auto (default): moto_server from the venv, else `minio` from PATH; moto or minio: force that one."""

MINIO_IMAGE = "minio/minio:RELEASE.2022-12-02T19-19-22Z"  # testcontainers' pinned default
ACCESS_KEY = "facegate"
SECRET_KEY = "facegate-secret"  # MinIO wants at least 8 characters
REGION = "us-east-1"

Kind = Literal["moto", "minio"]


def probe_for(service: S3Service) -> Probe:
    """moto answers any request once up; MinIO has a liveness endpoint that is 200 once it serves."""
    path = "/minio/health/live" if service.kind == "minio" else "/"

    def probe() -> None:
        conn = http.client.HTTPConnection(service.host, service.port, timeout=2)
        try:
            conn.request("GET", path)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            raise NotReadyError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        if status >= 500 or (service.kind == "minio" and status != 200):
            raise NotReadyError(f"GET {path} answered HTTP {status}")

    return probe


def _moto_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "moto_server"
    return str(beside_python) if beside_python.is_file() else shutil.which("moto_server")


def choose_local() -> tuple[Kind, str]:
    """(kind, binary) of the local S3 server to run, following FACEGATE_TEST_S3."""
    wanted = os.environ.get(ENV_S3, "auto").strip().lower() or "auto"
    if wanted not in {"auto", "moto", "minio"}:
        raise ValueError(f"{ENV_S3}={wanted!r}: expected auto, moto or minio")
    moto = _moto_binary() if wanted in {"auto", "moto"} else None
    if moto is not None:
        return "moto", moto
    minio = shutil.which("minio") if wanted in {"auto", "minio"} else None
    if minio is not None:
        return "minio", minio
    raise ServiceStartError(
        f"no S3 server binary ({ENV_S3}={wanted}): install moto[server] or put `minio` on PATH"
    )


def local_instance(workdir: Path, *, ready_timeout: float = 30.0) -> ServiceInstance[S3Service]:
    """moto_server (in-memory) or `minio server` (data in workdir/data) on 127.0.0.1:<free port>."""
    kind, binary = choose_local()
    port = free_port()
    (workdir / "data").mkdir()
    service = S3Service(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, REGION, kind)
    if kind == "moto":
        argv = [binary, "-H", "127.0.0.1", "-p", str(port)]
        env = {"AWS_DEFAULT_REGION": REGION}
    else:
        argv = [binary, "server", str(workdir / "data"), "--address", f"127.0.0.1:{port}", "--quiet"]
        env = {"MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY, "MINIO_BROWSER": "off"}
    return ServiceInstance(
        f"{kind}@{port}",
        service,
        LocalProcess(argv, workdir / f"{kind}.log", env=env, cwd=workdir),
        probe_for(service),
        workdir=workdir,
        data_dir=str(workdir / "data"),
        ready_timeout=ready_timeout,
    )


def container_instance(workdir: Path) -> ServiceInstance[S3Service]:
    from testcontainers.core.container import DockerContainer

    from devtools.services.docker import container_instance as wrap

    container = (
        DockerContainer(MINIO_IMAGE)
        .with_env("MINIO_ROOT_USER", ACCESS_KEY)
        .with_env("MINIO_ROOT_PASSWORD", SECRET_KEY)
        .with_command("server /data")
    )
    return wrap(
        "minio-container",
        container,
        container_port=9000,
        make_endpoint=lambda host, port: S3Service(
            f"http://{host}:{port}", ACCESS_KEY, SECRET_KEY, REGION, "minio"
        ),
        make_probe=probe_for,
        workdir=workdir,
        data_dir="/data",
    )


def client(service: S3Service) -> Minio:
    return Minio(
        service.netloc,
        access_key=service.access_key,
        secret_key=service.secret_key,
        secure=service.secure,
        region=service.region,
    )


def create_bucket(service: S3Service) -> str:
    """A new, uniquely named, empty bucket."""
    name = f"facegate-test-{uuid.uuid4().hex[:12]}"
    client(service).make_bucket(bucket_name=name)
    return name


def remove_bucket(service: S3Service, name: str) -> None:
    """Delete every object in bucket `name`, then the bucket."""
    s3 = client(service)
    for obj in s3.list_objects(bucket_name=name, recursive=True):
        if obj.object_name is not None:
            s3.remove_object(bucket_name=name, object_name=obj.object_name)
    s3.remove_bucket(bucket_name=name)
