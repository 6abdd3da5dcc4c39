"""Which backup folders are complete, and deleting all but the newest N."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from central.backup.manifest import MANIFEST

NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z")
"""A backup folder's name: its UTC creation time, e.g. 20261128T203000.123456Z (sorts by time)."""
TMP_PREFIX = ".tmp-"


def complete_backups(out: Path) -> list[Path]:
    """The complete backups under `out` (named by time, holding a manifest), oldest first."""
    if not out.is_dir():
        return []
    return sorted(
        p for p in out.iterdir() if p.is_dir() and NAME.fullmatch(p.name) and (p / MANIFEST).is_file()
    )


def apply_retention(out: Path, keep: int) -> list[Path]:
    """Delete all complete backups but the newest `keep` (at least 1); returns the deleted folders.
    Folders that are not complete backups (other files, `.tmp-*` of a running backup) are left alone."""
    if keep < 1:
        raise ValueError(f"keep={keep}: at least the newest backup is always kept")
    backups = complete_backups(out)
    doomed = backups[: max(0, len(backups) - keep)]
    for folder in doomed:
        shutil.rmtree(folder)
    return doomed
