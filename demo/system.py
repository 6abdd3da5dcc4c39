"""Central and the edges as the demo runs them: central's settings, its API (as the demo's admin key),
the edges' device files and what the demo reads of each edge (its SQLite gallery, its /metrics)."""

from __future__ import annotations

import os
import re
import sqlite3
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from common.errors import FacegateError
from demo.cast import GALLERY, Site
from demo.processes import FACEGATE, Child


def central_env(*, dsn: str, store: Path, secret_key: str, broker_url: str, cafile: Path,
                mqtt_user: str, mqtt_password: str, models: Path) -> dict[str, str]:  # fmt: skip
    """Central on embedded defaults: the folder object store, no Redis (rate limits and the job queue in
    process), TLS to the demo's broker; short intervals so that changes show within a second."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "FACEGATE_DATABASE_URL": dsn,
        "FACEGATE_STORAGE_DIR": str(store),
        "FACEGATE_SECRET_KEY": secret_key,
        "FACEGATE_MODELS": str(models),
        "FACEGATE_ENROLL_WORKERS": "1",
        "FACEGATE_DB_POOL_MAX": "6",
        "FACEGATE_MQTT_URL": broker_url,
        "FACEGATE_MQTT_CA_FILE": str(cafile),
        "FACEGATE_MQTT_USERNAME": mqtt_user,
        "FACEGATE_MQTT_PASSWORD": mqtt_password,
        "FACEGATE_INGEST_FLUSH_S": "0.05",
        "FACEGATE_DISTRIBUTION_POLL_S": "1",
    }


@dataclass
class Central:
    child: Child
    port: int
    key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        self.child.check_alive()
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def broker_connected(self) -> bool:
        self.child.check_alive()
        body = httpx.get(f"{self.url}/ready", timeout=10).json()
        return bool(body["checks"].get("broker") == "ok")

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=120, **kwargs)

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        if response.status_code not in expect:
            raise FacegateError(f"{method} {path}: {response.status_code} {response.text[:400]}")
        return response.json()


@dataclass
class Edge:
    site: Site
    folder: Path
    health_port: int
    child: Child | None = None

    @property
    def name(self) -> str:
        return f"{self.site.id}/{self.site.edge}"

    @property
    def config(self) -> Path:
        return self.folder / "device.yaml"

    def write_config(self, login: dict[str, str], broker: tuple[str, Path], central_url: str,
                     video: Path, models: Path) -> None:  # fmt: skip
        """The device file: `broker` is the broker's URL and the CA file that verifies it."""
        broker_url, cafile = broker
        state = self.folder / "state"
        state.mkdir(parents=True, exist_ok=True)
        secret = self.folder / "api-key"
        secret.write_text(login["api_key"])
        secret.chmod(0o600)
        password = self.folder / "broker-password"
        password.write_text(login["broker_password"])
        password.chmod(0o600)
        document = {
            "site": self.site.id,
            "edge": self.site.edge,
            "broker": {
                "url": broker_url,
                "username": login["broker_username"],
                "password_file": str(password),
                "ca_file": str(cafile),
                "keepalive": 10,
            },
            "central": {
                "url": central_url,
                "key_id": f"{self.site.id}-{self.site.edge}",
                "secret_file": str(secret),
            },
            "cameras": [
                {
                    "id": self.site.camera,
                    "source": str(video),
                    "loop": True,
                    "fps_cap": 5.0,
                    "detect_size": 320,
                }
            ],
            "gallery": {"ids": [GALLERY], "db_path": str(state / "gallery.db")},
            "outbox": {"path": str(state / "outbox.db")},
            "tracker": {"timeout_s": 0.8, "min_frames": 2},
            "heartbeat_s": 5.0,
            "health": {"host": "127.0.0.1", "port": self.health_port},
            "pipeline": {"models_dir": str(models), "runtime": {"intra_op_threads": 1}},
            "log_level": "warning",
        }
        self.config.write_text(yaml.safe_dump(document, sort_keys=False))

    def start(self, state: Path) -> None:
        self.child = Child(
            f"edge-{self.site.id}", [FACEGATE, "edge", "run", "--config", str(self.config)], state
        )
        self.child.start()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def ready(self) -> bool:
        if self.child is not None:
            self.child.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as response:
                return int(response.status) == 200
        except urllib.error.HTTPError:
            return False
        except OSError:
            return False

    def gallery_people(self) -> set[str]:
        """Person ids with a template in the edge's own SQLite gallery (read-only)."""
        path = self.folder / "state" / f"gallery.{GALLERY}.db"
        if not path.exists():
            return set()
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            try:
                return {str(row[0]) for row in db.execute("SELECT person_id FROM templates")}
            except sqlite3.OperationalError:  # created by the daemon, its tables not yet
                return set()

    def frames(self) -> float:
        """Frames processed so far (the daemon's facegate_edge_frames_total)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/metrics", timeout=5
            ) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        found = re.findall(r"^facegate_edge_frames_total\{[^}]*\} ([0-9.e+]+)$", text, flags=re.MULTILINE)
        return sum(float(value) for value in found)
