"""Find and SIGKILL a server's whole process tree, Linux /proc based.

Process groups are not enough: PostgreSQL's children call setsid(), so they leave the postmaster's group.
A process is identified by (pid, start time), so a pid reused by an unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from devtools.services.readiness import wait_for

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcId:
    pid: int
    start: int  # start time in clock ticks after boot (/proc/<pid>/stat field 22)


@dataclass(frozen=True, slots=True)
class _Stat:
    state: str
    ppid: int
    pgrp: int
    start: int


def _stat(pid: int) -> _Stat | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None  # gone, or /proc is not there
    fields = raw.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp session ... starttime
    return _Stat(state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]), start=int(fields[19]))


def tree(root: int) -> set[ProcId]:
    """`root`, its live descendants and the live members of its process group."""
    if not _PROC.is_dir():
        return set()
    table = {int(entry.name): _stat(int(entry.name)) for entry in _PROC.iterdir() if entry.name.isdigit()}
    live = {pid: stat for pid, stat in table.items() if stat is not None and stat.state != "Z"}
    found = {pid for pid, stat in live.items() if root in (pid, stat.pgrp)}
    frontier = list(found)
    while frontier:
        parent = frontier.pop()
        for pid, stat in live.items():
            if stat.ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return {ProcId(pid, live[pid].start) for pid in found}


def alive(proc: ProcId) -> bool:
    """Still running (not a zombie: those hold no ports, files or shared memory)?"""
    stat = _stat(proc.pid)
    return stat is not None and stat.start == proc.start and stat.state != "Z"


def kill_tree(root: int) -> set[ProcId]:
    """SIGSTOP `root` (so it forks nothing new), then SIGKILL it and its whole tree; returns the victims."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(root, signal.SIGSTOP)
    victims = tree(root)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(root, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(root, signal.SIGKILL)
    signal_all(victims, signal.SIGKILL)
    return victims


def signal_all(procs: set[ProcId], sig: signal.Signals) -> None:
    for proc in procs:
        if alive(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)


def wait_gone(procs: set[ProcId], timeout: float, what: str) -> None:
    """Wait until none of `procs` runs; SIGKILL stragglers after `timeout` seconds."""
    try:
        wait_for(lambda: not any(alive(proc) for proc in procs), timeout, what)
    except TimeoutError:
        signal_all(procs, signal.SIGKILL)
        wait_for(lambda: not any(alive(proc) for proc in procs), 5.0, f"{what} (after SIGKILL)")
