"""Field types shared by the API's request and response Structs (constraints become OpenAPI schema)."""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Literal

import msgspec
from litestar.params import QueryParameter

from central.errors import InvalidInput


def whole(pattern: str) -> str:
    """`pattern` anchored to the whole string. msgspec matches with `re.search`, where `^...$` also
    accepts a trailing newline (`$` matches before a final "\\n"); `\\A...\\Z` does not."""
    return rf"\A(?:{pattern})\Z"


SLUG_PATTERN = "[A-Za-z0-9_.-]{1,64}"
Slug = Annotated[str, msgspec.Meta(pattern=whole(SLUG_PATTERN), examples=["branch-12"])]
"""Site, edge and gallery ids: they are MQTT topic segments (1-64 of A-Z a-z 0-9 _ . -)."""

Name = Annotated[str, msgspec.Meta(max_length=200, pattern=whole(r"[^\x00-\x1f\x7f]*"))]
"""Display names and labels: up to 200 characters, no control characters."""

ExternalId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=whole(r"[^\x00-\x1f\x7f]+"))]

TimeZone = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=64, pattern=whole("[A-Za-z0-9_+/-]+"), examples=["Europe/Paris"]),
]
"""An IANA time zone name; `check_time_zone` looks it up in the zone database."""

PageLimit = Annotated[int, QueryParameter(ge=1, le=500, description="items per page (1-500)")]
"""The `limit` query parameter of list routes (Litestar enforces QueryParameter bounds, not msgspec.Meta)."""

KeyScope = Literal["admin", "operator", "viewer"]

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8
"""Levels of objects and arrays in a person's metadata, the object itself counted."""


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Refuse metadata nested over 8 levels, over 16 KiB of JSON or holding NUL characters (PostgreSQL
    jsonb cannot store them)."""
    depth = nesting_depth(metadata, MAX_METADATA_DEPTH)
    if depth > MAX_METADATA_DEPTH:
        raise InvalidInput(
            f"metadata nests objects and arrays more than {MAX_METADATA_DEPTH} levels deep: flatten it",
            code="metadata_too_deep",
        )
    encoded = msgspec.json.encode(metadata)
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is {len(encoded)} bytes of JSON; the limit is {MAX_METADATA_BYTES}")
    if b"\\u0000" in encoded:
        raise InvalidInput("metadata must not contain NUL characters")
    return metadata


def nesting_depth(value: Any, stop: int) -> int:
    """Levels of dicts and lists in `value` (a scalar: 0), found without recursion; counting stops past
    `stop` (the answer is then `stop` + 1)."""
    depth, level = 0, [value]
    while level:
        children = [v for item in level if isinstance(item, dict | list) for v in _children(item)]
        depth += any(isinstance(item, dict | list) for item in level)
        if depth > stop:
            return depth
        level = children
    return depth


def _children(item: dict[str, Any] | list[Any]) -> list[Any]:
    return list(item.values()) if isinstance(item, dict) else item


class Page(msgspec.Struct, frozen=True):
    """One page of a list: `next` is the cursor for the following page, null on the last."""

    items: list[Any]
    next: str | None = None


def check_time_zone(name: str) -> str:
    """`name` when the zone database knows it; InvalidInput `unknown_time_zone` otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'",
            code="unknown_time_zone",
        ) from err
    return name
