"""A locally started server process that can be stopped, SIGKILLed and started again with the same argv."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from devtools.services import proctree


class LocalProcess:
    """One server binary run in its own session, logging to `log_path` (appended on every launch).

    `run_as` names a system user to drop to (only possible, and only needed, when running as root).
    `stop_signal` is the server's "shut down now, cleanly" signal (SIGINT for PostgreSQL's fast shutdown).
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        run_as: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self._env = None if env is None else {**os.environ, **env}
        self._cwd = cwd
        self._run_as = run_as
        self._stop_signal = stop_signal
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def launch(self) -> None:
        if self.is_running():
            raise RuntimeError(f"{self.argv[0]} is already running (pid {self.pid})")
        uid, gid, groups = user_ids(self._run_as)
        with self.log_path.open("ab") as log:
            log.write(f"=== launching: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=groups,
            )

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def terminate(self, timeout: float) -> None:
        """Ask the server to shut down; SIGKILL its whole tree if that takes longer than `timeout`."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        members = proctree.tree(proc.pid)
        proc.send_signal(self._stop_signal)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        proctree.wait_gone(members, timeout, f"the processes of {self.argv[0]} to exit")

    def kill(self) -> None:
        """SIGKILL the server and every process it started (like a crash or `docker kill`); waits for them."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        victims = proctree.kill_tree(proc.pid)
        proc.wait()
        proctree.wait_gone(victims, 10.0, f"the SIGKILLed processes of {self.argv[0]} to exit")

    def pause(self) -> None:
        """SIGSTOP the server's whole process tree."""
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def _signal_tree(self, signum: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{self.argv[0]} is not running")
        for member in proctree.tree(proc.pid):
            with contextlib.suppress(ProcessLookupError):  # a child that exited meanwhile
                os.kill(member.pid, signum)

    def close(self) -> None:
        self.kill()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def read_file(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None


def user_ids(name: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """(uid, gid, supplementary groups) for subprocess' user/group/extra_groups; all None: don't switch."""
    if name is None:
        return None, None, None
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid, []
