"""Free TCP ports for private service instances, and a cheap "is something listening" check."""

from __future__ import annotations

import os
import random
import socket
import threading

PORT_RANGE = range(15000, 32000)
"""Ports handed to private services: below Linux's default ephemeral range (32768-60999)."""

_lock = threading.Lock()
_handed_out: set[int] = set()
_random = random.Random()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now and that this process has not handed out before.

    Drawn at random from PORT_RANGE, below the kernel's ephemeral range (so no outgoing connection or
    bind to port 0 takes it meanwhile), and checked by binding it; the socket is closed again, so the
    service binds it next. Remembering handed-out ports keeps two private instances of one test session
    apart even while one of them is stopped (its port is free at the OS level but reserved for its
    restart). Under pytest-xdist each worker takes only ports congruent to its number modulo the worker
    count, so two workers never hand out the same port.
    """
    index, count = worker_slot()
    with _lock:
        for _ in range(1000):
            port = _random.randrange(PORT_RANGE.start, PORT_RANGE.stop)
            port -= (port - index) % count
            if port < PORT_RANGE.start or port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free TCP port found on {host} in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def worker_slot() -> tuple[int, int]:
    """(this pytest-xdist worker's number, the number of workers); (0, 1) outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        count = 1
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return index % count, count


def port_is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connect to host:port succeeds within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
