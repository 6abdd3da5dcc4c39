"""The demo's child processes: each in its own session (Ctrl-C reaches only the demo, which stops them
in order: edges, central, broker, database), its output in a log file of the state folder, its pid
kept in `pids/` so that a demo killed outright has its leftovers stopped by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import FacegateError

FACEGATE = str(Path(sys.executable).parent / "facegate")


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Poll `check`; the seconds it took, or FacegateError naming `what` after `timeout` s."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise FacegateError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start


@dataclass
class Child:
    """One long-running child process: `name` names its log (`logs/NAME.log`) and pid file."""

    name: str
    command: Sequence[str]
    folder: Path
    env: Mapping[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.folder / "logs" / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return self.folder / "pids" / f"{self.name}.pid"

    def start(self) -> None:
        stop_leftover(self.pidfile)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.env if self.env is not None else os.environ, PYTHONUNBUFFERED="1")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.command), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.pidfile.write_text(str(self.proc.pid))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise FacegateError(f"{self.name} exited with {self.proc.returncode}; its log: {self.log}")

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.pidfile.unlink(missing_ok=True)


def stop_leftover(pidfile: Path) -> None:
    """Stop the process a killed demo left behind (its pid file names it), if it still runs one of ours."""
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ValueError, OSError):
        pidfile.unlink(missing_ok=True)
        return
    if b"facegate" in cmdline or b"mosquitto" in cmdline:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
