"""Errors of the auth package: 401 (who are you?) versus broken stored data.

403 (you may not) is `central.errors.Forbidden`, raised by every domain's access checks."""

from __future__ import annotations

from common.errors import FacegateError


class AuthError(FacegateError):
    """The caller is not authenticated (HTTP 401): missing, malformed, unknown, expired or forged credential.

    `reason` is a stable snake_case code for the JSON error body and metrics, e.g. "expired".
    """

    status_code = 401

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class HashFormatError(FacegateError):
    """A stored hash is not in a format this code writes: a server-side data problem (HTTP 500)."""


class RateLimitError(FacegateError):
    """Redis answered the rate-limit script with an error (not an outage, which falls back to local)."""
