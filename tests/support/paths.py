"""Where things are, for tests that read the repository's files (docs, deploy/, ansible/, ...)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root (this file is tests/support/paths.py)."""

SHARED = REPO.parent / "shared"
"""The team's shared folder beside the repository (read-only; may be absent)."""
