"""Errors of the auth package: 401 (who are you?) versus 403 (you may not) versus broken stored data."""

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


class Forbidden(FacegateError):  # noqa: N818 - named after the HTTP status it maps to
    """The caller is authenticated but may not do this (HTTP 403): scope too low, other site, edge-only."""

    status_code = 403

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class HashFormatError(FacegateError):
    """A stored hash is not in a format this code writes: a server-side data problem (HTTP 500)."""


class RateLimitError(FacegateError):
    """Redis answered the rate-limit script with an error (not an outage, which falls back to local)."""
