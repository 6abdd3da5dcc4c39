"""Finding and running pg_dump / pg_restore.

The rule: a client tool's major version must be at least the server's (pg_dump refuses newer servers)
and, for pg_restore, at least the major version of the pg_dump that wrote the dump. Candidates are
`/usr/lib/postgresql/*/bin/` (Debian's side-by-side versions) and `PATH`; the newest that fits is used.
The connection goes through libpq environment variables, so no password shows in the process list.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from central.backup.manifest import BackupError
from common.errors import ConfigError

DEBIAN_ROOT = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
}


@dataclass(frozen=True, slots=True)
class Tool:
    path: str
    version: str
    major: int


def candidates(name: str) -> list[Path]:
    found = sorted(DEBIAN_ROOT.glob(f"*/bin/{name}"))
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return [p for p in found if p.is_file() and os.access(p, os.X_OK)]


def tool_version(path: Path) -> Tool | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out.stdout)
    if match is None:
        return None
    version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return Tool(str(path), version, int(match.group(1)))


def find_tool(name: str, min_major: int) -> Tool:
    """The newest `name` (pg_dump or pg_restore) whose major version is at least `min_major`."""
    tools = [t for t in (tool_version(p) for p in candidates(name)) if t is not None]
    fitting = [t for t in tools if t.major >= min_major]
    if not fitting:
        seen = ", ".join(f"{t.path} ({t.version})" for t in tools) or "none"
        raise ConfigError(
            f"no {name} of major version {min_major} or newer (found: {seen}); install the PostgreSQL "
            f"{min_major} client tools (for example `apt-get install postgresql-client-{min_major}`)"
        )
    return max(fitting, key=lambda t: t.major)


def libpq_env(dsn: str) -> dict[str, str]:
    """The process environment plus PG* variables that connect to `dsn`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, value in conninfo_to_dict(dsn).items():
        if key in _LIBPQ_ENV and value is not None:
            env[_LIBPQ_ENV[key]] = str(value)
    return env


def dbname(dsn: str) -> str:
    """The database name of `dsn` (pg_restore needs it explicitly, else it prints SQL)."""
    name = conninfo_to_dict(dsn).get("dbname")
    if not name:
        raise ConfigError("the database URL names no database; add /<dbname> to it")
    return str(name)


def run_tool(tool: Tool, args: list[str], dsn: str) -> None:
    """Run the tool; BackupError with its stderr when it fails."""
    proc = subprocess.run([tool.path, *args], capture_output=True, text=True, env=libpq_env(dsn), check=False)
    if proc.returncode != 0:
        raise BackupError(
            f"{Path(tool.path).name} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
