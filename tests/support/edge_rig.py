"""A real edge device for daemon tests: a private Mosquitto, a gallery enrolled from real photos, a
device file, the daemon as a real process, and its /metrics."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools.services.endpoints import MqttBroker
from devtools.services.instance import ServiceInstance
from tests.support.edge_device import device_file

FACEGATE = str(Path(sys.executable).parent / "facegate")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Rig:
    """One edge (site s1, edge e1) following gallery `staff`, on its own broker."""

    tmp: Path
    broker: ServiceInstance[MqttBroker]
    model_dir: Path
    health: int

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    @property
    def log(self) -> Path:
        return self.tmp / "daemon.log"

    def config(self, cameras: list[dict[str, object]], **extra: object) -> Path:
        return device_file(
            self.tmp / "device.yaml",
            broker_port=self.broker.endpoint.port,
            state=self.state,
            model_dir=self.model_dir,
            health_port=self.health,
            cameras=cameras,
            **extra,
        )

    def start(self, config: Path) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.Popen(
            [FACEGATE, "edge", "run", "--config", str(config)],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )

    def stop(self, daemon: subprocess.Popen[bytes]) -> int:
        """SIGTERM, and the exit status (the daemon is killed if it does not stop in 30 s)."""
        if daemon.poll() is None:
            daemon.terminate()
            try:
                return daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                raise
        return int(daemon.returncode)

    def up(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.health)) == 0

    def wait_up(self) -> None:
        wait_until(self.up, 60, f"the health endpoint (log: {self.log})")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health}{path}", timeout=2) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())

    def readyz(self) -> tuple[int, dict[str, object]]:
        status, body = self.get("/readyz")
        return status, json.loads(body)

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def metric(self, series: str) -> float:
        """One series' value (`name{labels}` exactly as exposed), or the sum of a name's series."""
        lines = self.metrics().splitlines()
        exact = [line for line in lines if line.startswith(series + " ")]
        if exact:
            return float(exact[0].split()[-1])
        return sum(float(line.split()[-1]) for line in lines if line.startswith(series + "{"))

    def outbox_ids(self) -> set[str]:
        path = self.state / "outbox.db"
        if not path.exists():
            return set()
        with sqlite3.connect(path) as db:
            try:
                return {row[0] for row in db.execute("SELECT id FROM outbox")}
            except sqlite3.OperationalError as err:  # the daemon created the file, not yet its table
                if "no such table" not in str(err):
                    raise
                return set()
