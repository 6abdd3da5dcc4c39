"""Real processes of the system tests: central (`facegate central serve`) and edge daemons
(`facegate edge run`), each started, stopped, killed or frozen by its own pid, and what the edge keeps
on disk (SQLite gallery, outbox, sequence numbers) and logs. Used by tests/support/system_rig.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.processes import wait_until
from devtools.services.ports import free_port

__all__ = ["FACEGATE", "GALLERY", "CentralProcess", "EdgeProcess", "edge_ready", "wait_until"]

FACEGATE = str(Path(sys.executable).parent / "facegate")
GALLERY = "staff"


def _stop(proc: subprocess.Popen[bytes] | None, *, kill: bool = False) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class CentralProcess:
    """`facegate central serve` on a free port; `env` holds its FACEGATE_* settings."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [FACEGATE, "central", "serve", "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(
            command, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        wait_until(self._healthy, 90, f"central's /health (log: {self.log})")

    def _healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"central exited with {self.proc.returncode} (log: {self.log})"
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def broker_connected(self) -> bool:
        body = httpx.get(f"{self.url}/ready", timeout=10).json()
        return bool(body["checks"].get("broker") == "ok")

    def stop(self) -> None:
        _stop(self.proc)

    def kill(self) -> None:
        _stop(self.proc, kill=True)

    def pause(self, paused: bool) -> None:
        """SIGSTOP (frozen: it neither commits nor acknowledges) or SIGCONT."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)


@dataclass
class EdgeProcess:
    """One `facegate edge run`; its state files live in `folder`."""

    site: str
    edge: str
    folder: Path
    health: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.folder / "device.yaml"

    @property
    def log(self) -> Path:
        return self.folder / "edge.log"

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [FACEGATE, "edge", "run", "--config", str(self.config)]
        self.proc = subprocess.Popen(command, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        _stop(self.proc)

    def kill(self) -> None:
        _stop(self.proc, kill=True)

    def readyz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health}/readyz", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return 0

    def _query(self, path: Path, sql: str) -> list[tuple[Any, ...]]:
        if not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            try:
                return db.execute(sql).fetchall()
            except sqlite3.OperationalError as err:  # created by the daemon, its tables not yet
                if "no such table" not in str(err):
                    raise
                return []

    def gallery_people(self, gallery: str = GALLERY) -> set[str]:
        """Person ids with a template in the edge's own SQLite gallery."""
        rows = self._query(self.folder / "state" / f"gallery.{gallery}.db", "SELECT person_id FROM templates")
        return {str(row[0]) for row in rows}

    def outbox_rows(self) -> int:
        """Events still waiting for central's receipt (rows are deleted on receipt)."""
        return len(self._query(self.folder / "state" / "outbox.db", "SELECT id FROM outbox"))

    def outbox_seqs(self) -> set[tuple[str, int]]:
        """(camera, seq) of every event in the outbox, read from the payloads."""
        rows = self._query(self.folder / "state" / "outbox.db", "SELECT payload FROM outbox")
        return {(str(e["camera"]), int(e["seq"])) for e in (json.loads(row[0]) for row in rows)}

    def last_seqs(self) -> dict[str, int]:
        """Per camera, the last sequence number the edge took: it made events 1..last (a crash may leave
        one gap: the number is taken before the event is written)."""
        rows = self._query(self.folder / "state" / "sequences.db", "SELECT camera, last FROM seq")
        return {str(camera): int(last) for camera, last in rows}

    def logged_seqs(self) -> set[tuple[str, int]]:
        """(camera, seq) of every `event` log line: each is written after the event's outbox commit."""
        found = set()
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"event": "event"' in line.replace('":"', '": "'):
                entry = json.loads(line)
                found.add((str(entry["camera"]), int(entry["seq"])))
        return found


def edge_ready(edge: EdgeProcess) -> bool:
    return edge.readyz() == 200
