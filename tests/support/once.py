"""State built once and shared: by the pytest-xdist workers of one run, or by every run on this machine.

Under xdist each worker runs its own session fixtures, so a session fixture that builds something costly,
or writes into a folder other processes read, does it here behind a file lock (the pattern the
pytest-xdist docs give): the first worker builds, the others wait and reuse.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

LOCK_TIMEOUT_S = 900.0
DONE = ".built"


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Held by one process on this machine at a time (another test run included): for writes into shared
    caches such as ~/.cache/facegate."""
    folder = Path(tempfile.gettempdir()) / "facegate-test-locks"
    folder.mkdir(exist_ok=True)
    with FileLock(folder / f"{name}.lock", timeout=LOCK_TIMEOUT_S):
        yield


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by every worker of this run (the workers' base temp's parent under xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """`folder`, filled by `build(folder)` by the first worker that asks; the others wait and reuse it."""
    folder = run_folder(tmp_path_factory) / name
    with FileLock(f"{folder}.lock", timeout=LOCK_TIMEOUT_S):
        if not (folder / DONE).exists():
            folder.mkdir(parents=True, exist_ok=True)
            build(folder)
            (folder / DONE).touch()
    return folder
