"""Request and response bodies of `/api/v1/auth` (docs/central-auth.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from central.schemas import KeyScope, Name, Slug


class TokenRead(msgspec.Struct, frozen=True):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class ApiKeyRead(msgspec.Struct, frozen=True):
    prefix: str
    name: str
    scope: str
    sites: list[str]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class KeyCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scope: KeyScope
    name: Name = ""
    sites: Annotated[list[Slug], msgspec.Meta(max_length=1000)] = []


class KeyCreated(msgspec.Struct, frozen=True):
    key: str
    """The API key, shown this once: store it now."""
    info: ApiKeyRead
