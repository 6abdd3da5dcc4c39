"""The whole system on one machine as real processes, for the end-to-end and fault tests.

- central: `facegate central serve` (uvicorn) in a subprocess, with its real MQTT client over TLS, on a
  database and S3 bucket the test gives it; stop, kill and start it again at will;
- the broker: Mosquitto run on the files `facegate central broker-config` writes from central's edge
  registry (TLS with a CA the test makes, password file, ACL, persistence);
- edges: `facegate edge run --config FILE` subprocesses, each with the credentials its registration
  through central's API returned, reading a looping video composed from real photos.

Nothing here is mocked; `System` only reads what each part keeps (PostgreSQL, the edges' SQLite files,
their logs and /metrics) to check it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from central.auth.repository import create_key_sync
from central.storage import S3Store
from demo.tls import CertificateFiles, make_certificates
from devtools.services.binaries import system_binary
from devtools.services.endpoints import MqttBroker, PostgresService, S3Service
from devtools.services.factories import PostgresFactory
from devtools.services.instance import ServiceInstance
from devtools.services.ports import free_port
from devtools.services.process import LocalProcess
from devtools.services.readiness import NotReadyError
from devtools.services.s3 import create_bucket, remove_bucket
from tests.support.central_app import SECRET, s3_settings
from tests.support.secure_broker import Login, SecureClient
from tests.support.system_processes import (
    FACEGATE,
    GALLERY,
    CentralProcess,
    EdgeProcess,
    edge_ready,
    wait_until,
)


def write_device_file(edge: EdgeProcess, login: dict[str, str], system: System, video: Path) -> None:
    """The edge's device file: its broker login over TLS, its API credential, one looping camera."""
    state = edge.folder / "state"
    document = {
        "site": edge.site,
        "edge": edge.edge,
        "broker": {
            "url": f"mqtts://127.0.0.1:{system.broker_port}",
            "username": login["broker_username"],
            "password": login["broker_password"],
            "ca_file": str(system.certs.cafile),
            "keepalive": 5,
        },
        "central": {
            "url": system.central.url,
            "key_id": f"{edge.site}-{edge.edge}",
            "secret": login["api_key"],
        },
        "cameras": [{"id": "door", "source": str(video), "loop": True, "fps_cap": 4.0, "detect_size": 320}],
        "gallery": {"ids": [GALLERY], "db_path": str(state / "gallery.db")},
        "outbox": {"path": str(state / "outbox.db"), "resend_after_s": 3.0},
        "tracker": {"timeout_s": 0.6, "min_frames": 2},
        "heartbeat_s": 1.0,
        "health": {"host": "127.0.0.1", "port": edge.health},
        "pipeline": {"models_dir": str(system.model_dir), "runtime": {"intra_op_threads": 1}},
        "log_level": "info",
    }
    edge.config.write_text(yaml.safe_dump({**document, **system.device.get(f"{edge.site}/{edge.edge}", {})}))


OBSERVER = "observer"  # the tests' own central-rights login (System.observer)


@dataclass
class System:
    tmp: Path
    dsn: str
    model_dir: Path
    certs: CertificateFiles
    central: CentralProcess
    central_login: Login
    broker_port: int
    broker: ServiceInstance[MqttBroker] | None = None
    admin: dict[str, str] = field(default_factory=dict)
    edges: dict[str, EdgeProcess] = field(default_factory=dict)
    logins: dict[str, dict[str, str]] = field(default_factory=dict)
    device: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per "site/edge", top-level sections replacing those of its device file (write_device_file)."""

    @property
    def observer(self) -> Login:
        """A second central login (same password) for the tests' own clients: the broker binds client
        ids to logins, so a test client using central's login would take central's session over."""
        return Login(OBSERVER, self.central_login.password)

    # --- central's API --------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.central.url}/api/v1{path}", headers=self.admin, timeout=60, **kwargs
        )

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
        response = self.api("POST", path, json=body)
        assert response.status_code == expect, response.text
        return dict(response.json())

    def enroll(self, external_id: str, photo: Path) -> str:
        """Create a person in the gallery and enroll one photo; the person id."""
        person = self.post("/people", {"external_id": external_id, "galleries": [GALLERY]})
        files = {"photos": (photo.name, photo.read_bytes(), "image/jpeg")}
        response = self.api("POST", f"/people/{person['id']}/photos", files=files)
        assert response.status_code == 200, response.text
        assert all(result["status"] == "accepted" for result in response.json()), response.text
        return str(person["id"])

    # --- PostgreSQL -----------------------------------------------------------------------------

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            return list(conn.execute(sql, params).fetchall())

    def stored_seqs(self, site: str, edge: str) -> list[tuple[str, int]]:
        """(camera, seq) of every stored event of the edge: a list, so a duplicate shows twice."""
        sql = "SELECT camera, seq FROM events WHERE site_id = %s AND edge_id = %s"
        return [(str(c), int(s)) for c, s in self.rows(sql, site, edge)]

    def holds_all(self, name: str, expected: set[tuple[str, int]]) -> bool:
        """Whether every (camera, seq) in `expected` of edge `site/edge` is stored."""
        site, edge = name.split("/")
        return expected <= set(self.stored_seqs(site, edge))

    def duplicate_ids(self) -> list[tuple[Any, ...]]:
        return self.rows("SELECT id, count(*) FROM events GROUP BY id HAVING count(*) > 1")

    # --- the broker -----------------------------------------------------------------------------

    def start_broker(self) -> None:
        """Generate the files with `facegate central broker-config` and start Mosquitto on them."""
        files, data = self.tmp / "broker", self.tmp / "broker-data"
        data.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            FACEGATE_MQTT_USERNAME=self.central_login.username,
            FACEGATE_MQTT_PASSWORD=self.central_login.password,
            FACEGATE_BROKER_CENTRAL_USER=f"{self.central_login.username},{OBSERVER}",
        )
        subprocess.run(
            [FACEGATE, "central", "broker-config", "--out", str(files), "--database-url", self.dsn,
             "--listener-port", str(self.broker_port), "--bind-address", "127.0.0.1",
             "--cafile", str(self.certs.cafile), "--certfile", str(self.certs.certfile),
             "--keyfile", str(self.certs.keyfile), "--persistence-dir", str(data),
             "--autosave-interval", "1"],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        binary = system_binary("mosquitto")
        assert binary is not None, "mosquitto not found; run scripts/ensure-services.sh"
        extra = ["log_dest stderr", "log_type all"] + (["user root"] if os.geteuid() == 0 else [])
        run_conf = self.tmp / "mosquitto-run.conf"
        run_conf.write_text((files / "mosquitto.conf").read_text() + "\n".join(extra) + "\n")
        process = LocalProcess([binary, "-c", str(run_conf)], self.tmp / "mosquitto.log", cwd=self.tmp)
        self.broker = ServiceInstance(
            f"mosquitto-tls@{self.broker_port}",
            MqttBroker(host="127.0.0.1", port=self.broker_port),
            process,
            self._probe_broker,
            workdir=self.tmp,
            data_dir=str(data),
        )
        self.broker.start()

    def _probe_broker(self) -> None:
        try:
            with SecureClient(self.broker_port, self.certs.cafile, self.observer) as client:
                code = client.connected
        except OSError as err:
            raise NotReadyError(f"{type(err).__name__}: {err}") from err
        if code is None or code.is_failure:
            raise NotReadyError(f"central's login was refused: {code}")

    def client(self, login: Login) -> SecureClient:
        return SecureClient(self.broker_port, self.certs.cafile, login)

    # --- edges ----------------------------------------------------------------------------------

    def register_edge(self, site: str, edge: str) -> None:
        registered = self.post(f"/sites/{site}/edges", {"id": edge})
        self.logins[f"{site}/{edge}"] = dict(registered["credentials"])

    def add_edge(self, site: str, edge: str, video: Path) -> EdgeProcess:
        process = EdgeProcess(site, edge, self.tmp / f"edge-{site}-{edge}")
        process.folder.mkdir(parents=True, exist_ok=True)
        write_device_file(process, self.logins[f"{site}/{edge}"], self, video)
        self.edges[f"{site}/{edge}"] = process
        process.start()
        return process

    def wait_edges_ready(self, timeout: float = 90) -> None:
        for name, edge in self.edges.items():
            wait_until(partial(edge_ready, edge), timeout, f"edge {name} ready (log: {edge.log})")

    def close(self) -> None:
        for edge in self.edges.values():
            edge.stop()
        self.central.stop()
        if self.broker is not None:
            self.broker.close()


def central_env(dsn: str, s3: S3Service, bucket: str, model_dir: Path, broker_port: int, login: Login,
                cafile: Path) -> dict[str, str]:  # fmt: skip
    """Central's settings: TLS to the broker as `login` (its client id: its session survives restarts),
    short flush, backoff and distribution intervals so the tests run in seconds."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FACEGATE_DATABASE_URL": dsn,
        "FACEGATE_SECRET_KEY": SECRET,
        "FACEGATE_S3_ENDPOINT": f"{'https' if s3.secure else 'http'}://{s3.netloc}",
        "FACEGATE_S3_ACCESS_KEY": s3.access_key,
        "FACEGATE_S3_SECRET_KEY": s3.secret_key,
        "FACEGATE_S3_BUCKET": bucket,
        "FACEGATE_S3_REGION": s3.region,
        "FACEGATE_MODELS": str(model_dir),
        "FACEGATE_ENROLL_WORKERS": "1",
        "FACEGATE_DB_POOL_MAX": "4",
        "FACEGATE_MQTT_URL": f"mqtts://127.0.0.1:{broker_port}",
        "FACEGATE_MQTT_CA_FILE": str(cafile),
        "FACEGATE_MQTT_USERNAME": login.username,
        "FACEGATE_MQTT_PASSWORD": login.password,
        "FACEGATE_MQTT_BACKOFF_MAX_S": "1",
        "FACEGATE_INGEST_FLUSH_S": "0.05",
        "FACEGATE_INGEST_RETRY_MAX_S": "1",
        "FACEGATE_INGEST_EDGE_CACHE_S": "1",
        "FACEGATE_DISTRIBUTION_POLL_S": "1",
        "FACEGATE_RESYNC_CHECK_S": "2",
        "FACEGATE_RESYNC_GRACE_S": "3",
        "FACEGATE_RESYNC_MIN_INTERVAL_S": "5",
        "FACEGATE_RATE_LIMIT_PER_S": "1000",
        "FACEGATE_RATE_LIMIT_BURST": "1000",
    }


@contextmanager
def running_system(
    tmp: Path,
    dsn: str,
    s3: S3Service,
    bucket: str,
    model_dir: Path,
    sites: dict[str, list[str]],
    video: Path,
    *,
    central_extra: dict[str, str] | None = None,
    device: dict[str, dict[str, Any]] | None = None,
) -> Iterator[System]:
    """Central (with `central_extra` FACEGATE_* settings), then sites, the gallery `staff` scoped to every
    site and the edges registered through its API, then the broker on the generated files, then the edge
    daemons; all stopped on exit. `device`: per "site/edge", device-file sections of its own
    (System.device)."""
    certs = make_certificates(tmp / "certs")
    login = Login("central", secrets.token_urlsafe(24))
    port = free_port()
    env = central_env(dsn, s3, bucket, model_dir, port, login, certs.cafile) | (central_extra or {})
    central = CentralProcess(env, tmp / "central.log")
    system = System(tmp, dsn, model_dir, certs, central, login, port, device=device or {})
    with ExitStack() as stack:
        stack.callback(system.close)
        central.start()  # migrates the database
        with psycopg.connect(dsn) as conn:
            system.admin = {
                "Authorization": f"Bearer {create_key_sync(conn, 'system test', 'admin').display}"
            }
        for site in sites:
            system.post("/sites", {"id": site, "name": site})
        system.post("/galleries", {"id": GALLERY, "name": "Staff", "sites": list(sites)})
        for site, edges in sites.items():
            for edge in edges:
                system.register_edge(site, edge)
        system.start_broker()
        wait_until(central.broker_connected, 30, f"central's MQTT connection (log: {central.log})")
        for site, edges in sites.items():
            for edge in edges:
                system.add_edge(site, edge, video)
        system.wait_edges_ready()
        yield system


def crop_exists(s3: S3Service, bucket: str, key: str) -> bool:
    return S3Store(s3_settings(s3, bucket)).exists(key)


@contextmanager
def private_backends(
    tmp: Path, s3: S3Service, *, docker: bool
) -> Iterator[tuple[ServiceInstance[PostgresService], str]]:
    """A private PostgreSQL cluster (its own user, a free port) and a fresh bucket on the S3 server."""
    bucket = create_bucket(s3)
    try:
        with PostgresFactory(tmp, docker=docker) as factory:
            yield factory(), bucket
    finally:
        remove_bucket(s3, bucket)
