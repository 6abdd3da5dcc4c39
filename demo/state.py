"""The demo's state folder and `state.json` in it: ports, generated secrets, credentials and what was
already done (people enrolled, latencies measured), so that a second run reuses all of it."""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DEFAULT = Path(".demo")


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoState:
    """`folder` holds everything; `data` is `state.json` (mode 0600: it holds secrets)."""

    folder: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: Path) -> DemoState:
        folder = folder.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "state.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(folder, data)

    @property
    def reused(self) -> bool:
        return bool(self.data.get("people"))

    def save(self) -> None:
        path = self.folder / "state.json"
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.data, out, indent=2, sort_keys=True)
        temporary.replace(path)

    def port(self, name: str) -> int:
        """The port saved under `name` when it is still free, else a new free one (saved)."""
        ports: dict[str, int] = self.data.setdefault("ports", {})
        saved = ports.get(name)
        if saved is None or not port_free(saved):
            taken = set(ports.values())
            port = free_port()
            while port in taken:
                port = free_port()
            ports[name] = port
            self.save()
        return int(ports[name])

    def secret(self, name: str) -> str:
        """A random secret generated once and kept under `name`."""
        kept: dict[str, str] = self.data.setdefault("secrets", {})
        if name not in kept:
            kept[name] = secrets.token_urlsafe(32)
            self.save()
        return kept[name]
