"""Field types shared by the API's request and response Structs (constraints become OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar.params import QueryParameter

from central.errors import InvalidInput

Slug = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$", examples=["branch-12"])]
"""Site, edge and gallery ids: they are MQTT topic segments (1-64 of A-Z a-z 0-9 _ . -)."""

Name = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
"""Display names and labels: up to 200 characters, no control characters."""

ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]

PageLimit = Annotated[int, QueryParameter(ge=1, le=500, description="items per page (1-500)")]
"""The `limit` query parameter of list routes (Litestar enforces QueryParameter bounds, not msgspec.Meta)."""

KeyScope = Literal["admin", "operator", "viewer"]

MAX_METADATA_BYTES = 16 * 1024


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Refuse metadata over 16 KiB of JSON or holding NUL characters (PostgreSQL jsonb cannot store them)."""
    encoded = msgspec.json.encode(metadata)
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is {len(encoded)} bytes of JSON; the limit is {MAX_METADATA_BYTES}")
    if b"\\u0000" in encoded:
        raise InvalidInput("metadata must not contain NUL characters")
    return metadata


class Page(msgspec.Struct, frozen=True):
    """One page of a list: `next` is the cursor for the following page, null on the last."""

    items: list[Any]
    next: str | None = None
