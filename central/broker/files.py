"""Writing the broker's three files atomically, and asking a running broker to re-read them.

Each file is written to a temporary file in the same folder, flushed to disk, then renamed over the old
one, so the broker never reads a half-written file. The password file holds only `$7$` hashes and is
mode 0600; the ACL file and mosquitto.conf are 0644 (no secrets). Run the generator as the broker's
user (or chown the folder to it): Mosquitto reads these files with its own rights.

Mosquitto 2 re-reads the password file and the ACL file on SIGHUP (verified in
tests/integration/central/test_broker.py): a new edge can log in and a deleted one cannot, without a restart;
connected clients stay connected, and their topic rights follow the new ACL file.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from central.broker.acl import CentralAccount, render_acl_file, render_password_file
from central.broker.conf import ACL_FILE, CONF_FILE, PASSWORD_FILE, BrokerConf, render_conf
from central.broker.registry import BrokerRegistry
from central.broker.repository import load_registry
from central.db.pool import AsyncPool
from common.errors import ConfigError

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True, slots=True)
class Written:
    """The paths written, how many edges got a login, and whether the password or ACL file changed."""

    paths: tuple[Path, ...]
    edges: int
    changed: bool


def write_atomic(path: Path, text: str, mode: int) -> bool:
    """Replace `path` with `text` (temp file in the same folder, fsync, rename, fsync the folder);
    whether the content changed (an identical file is left alone)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        path.chmod(mode)
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def write_auth_files(out: Path, registry: BrokerRegistry, central: Sequence[CentralAccount]) -> Written:
    """The password file and the ACL file (what a reload re-reads) in folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    passwords, acl = out / PASSWORD_FILE, out / ACL_FILE
    changed = write_atomic(passwords, render_password_file(registry, central), SECRET_MODE)
    changed = write_atomic(acl, render_acl_file(registry, central), PUBLIC_MODE) or changed
    return Written((passwords, acl), sum(1 for e in registry.edges if e.password_hash), changed)


def write_broker_files(
    out: Path, registry: BrokerRegistry, central: Sequence[CentralAccount], conf: BrokerConf
) -> Written:
    """All three files in `out` (mosquitto.conf last, so it never names files that are not there)."""
    written = write_auth_files(out, registry, central)
    path = out / CONF_FILE
    write_atomic(path, render_conf(conf), PUBLIC_MODE)
    return Written((*written.paths, path), written.edges, written.changed)


def reload_broker(pid: int) -> None:
    """SIGHUP the broker: it re-reads its password and ACL files. ConfigError when no such process."""
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as err:
        raise ConfigError(f"no process {pid} to reload: is mosquitto running, and is its pid right?") from err
    except PermissionError as err:
        raise ConfigError(f"not allowed to signal process {pid}: run as the broker's user or root") from err


def pid_from_file(path: Path) -> int:
    """The pid in a pid file (mosquitto's `pid_file`)."""
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise ConfigError(f"cannot read pid file {path}: {err.strerror}") from err
    if not text.isdigit():
        raise ConfigError(f"pid file {path} does not hold a process id: {text[:40]!r}")
    return int(text)


async def regenerate(
    pool: AsyncPool, out: Path, central: Sequence[CentralAccount], pid: int | None
) -> Written:
    """Rewrite the password and ACL files from the database behind `pool`; SIGHUP `pid` if given
    and they changed.

    For central to call after it registers, rotates or deletes an edge, where the broker's files are on
    its host (not wired by default: see docs/central-broker.md). mosquitto.conf is left as it is: it
    does not depend on the registry."""
    import anyio.to_thread

    async with pool.connection() as conn:
        registry = await load_registry(conn)
    written = await anyio.to_thread.run_sync(write_auth_files, out, registry, central)
    if pid is not None and written.changed:
        reload_broker(pid)
    return written
