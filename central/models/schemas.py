"""Response bodies of `/api/v1/models`."""

from __future__ import annotations

import msgspec


class ModelRead(msgspec.Struct, frozen=True, kw_only=True):
    """A model's manifest: what it is, its file and how to feed it (see MODELS.md)."""

    id: str
    kind: str
    family: str
    file: str
    sha256: str
    size_bytes: int
    input_size: tuple[int, int]
    layout: str
    color_order: str
    mean: float
    std: float
    embedding_size: int
    license: str
    source: str
    artifact: str
    """Path of GET .../artifact, which returns the file (edge credentials and admin keys)."""
