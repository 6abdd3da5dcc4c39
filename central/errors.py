"""Domain errors of central's API. Each carries an HTTP status and a stable snake_case `code`.

`central/http/errors.py` maps these (and the auth, storage, database and image errors) to JSON responses
in one place: `{"code": ..., "message": ..., "request_id": ...}`. `Forbidden` (403, with a `reason`) is
here rather than in central/auth/ because every domain raises it (central/principal.py checks scopes).
"""

from __future__ import annotations

from typing import Any

from common.errors import FacegateError


class ApiError(FacegateError):
    """Base of the errors a request can cause. `details` goes into the JSON body when set."""

    status_code = 400
    default_code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.details = details


class InvalidInput(ApiError):  # noqa: N818  # named after what the client sent
    """The request is well formed but a value is not acceptable (422)."""

    status_code = 422
    default_code = "invalid_input"


class NotFound(ApiError):  # noqa: N818
    status_code = 404
    default_code = "not_found"


class Conflict(ApiError):  # noqa: N818
    """The request clashes with what is stored: a duplicate external id, a row still in use (409)."""

    status_code = 409
    default_code = "conflict"


class Gone(ApiError):  # noqa: N818
    """What was asked for existed but can no longer be produced (410)."""

    status_code = 410
    default_code = "gone"


class PayloadTooLarge(ApiError):  # noqa: N818
    status_code = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(ApiError):  # noqa: N818
    status_code = 415
    default_code = "unsupported_media_type"


class TooManyRequests(ApiError):  # noqa: N818
    status_code = 429
    default_code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):  # noqa: N818
    """A dependency (database, storage, broker, Redis) cannot serve the request now (503)."""

    status_code = 503
    default_code = "unavailable"


class Forbidden(FacegateError):  # noqa: N818 - named after the HTTP status it maps to
    """The caller is authenticated but may not do this (HTTP 403): scope too low, other site, edge-only.

    `reason` is a stable snake_case code for the JSON error body, e.g. "site_not_allowed"."""

    status_code = 403

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
