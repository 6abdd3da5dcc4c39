"""Every error a request can meet, mapped to a JSON response in this one place.

Body: `{"code": stable_snake_case, "message": what happened and what to do, "request_id": ...}` plus
`details` where there are some (validation errors list the fields). Unexpected exceptions are logged
with their traceback and answered 500 without internals.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.types import ExceptionHandlersMap

from central.auth.errors import AuthError, HashFormatError
from central.db.pool import DatabaseUnavailableError
from central.errors import ApiError, Forbidden, TooManyRequests
from central.http.context import current_request_id
from central.storage import InvalidKeyError, ObjectNotFound, StorageError
from common.errors import FacegateError, ImageError
from common.mqtt.errors import MqttError

log = logging.getLogger("central.http")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": current_request_id()}
    if details is not None:
        body["details"] = details
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    headers = None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return error_response(exc.status_code, exc.code, str(exc), exc.details, headers)


def _auth_error(_: Request[Any, Any, Any], exc: AuthError) -> Response[dict[str, Any]]:
    return error_response(401, exc.reason, str(exc), headers={"WWW-Authenticate": 'Bearer realm="facegate"'})


def _forbidden(_: Request[Any, Any, Any], exc: Forbidden) -> Response[dict[str, Any]]:
    return error_response(403, exc.reason, str(exc))


def _image_error(_: Request[Any, Any, Any], exc: ImageError) -> Response[dict[str, Any]]:
    return error_response(422, "bad_image", str(exc))


def _storage_error(_: Request[Any, Any, Any], exc: StorageError) -> Response[dict[str, Any]]:
    if isinstance(exc, ObjectNotFound):
        return error_response(404, "object_not_found", str(exc))
    if isinstance(exc, InvalidKeyError):
        return error_response(422, "invalid_key", str(exc))
    log.error("storage_error", extra={"error": str(exc)})
    return error_response(503, "storage_unavailable", f"object storage failed: {exc}")


def _database_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return error_response(409, "conflict", "a row with the same unique value already exists")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return error_response(409, "conflict", "the change refers to, or is referred to by, another row")
    if isinstance(exc, psycopg.errors.DataError | psycopg.errors.IntegrityError):
        return error_response(422, "invalid_input", f"the database refused a value: {_first_line(exc)}")
    if isinstance(exc, psycopg.OperationalError | DatabaseUnavailableError):
        log.error("database_unavailable", extra={"error": _first_line(exc)})
        return error_response(503, "database_unavailable", "the database cannot be reached; retry later")
    log.exception("database_error")
    return error_response(500, "internal_error", "the database failed unexpectedly; see the server log")


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    details = exc.extra if isinstance(exc, ValidationException) and exc.extra else None
    if (body_error := _body_validation_error(exc)) is not None:
        return body_error
    if status >= 500:
        log.error("http_error", extra={"status": status, "error": exc.detail})
        return error_response(status, "internal_error", "the server failed; see its log")
    message = _body_too_large(request) if status == 413 else str(exc.detail)
    return error_response(status, _HTTP_CODES.get(status, "client_error"), message, details, exc.headers)


def _body_validation_error(exc: HTTPException) -> Response[dict[str, Any]] | None:
    """400 for a request body that failed validation but that Litestar reports as a 500: it takes an
    error at a body field named like an injected dependency (`galleries` of POST /people, the service
    `galleries`) for a failed dependency. msgspec's message names the body (`$.data...`)."""
    cause = exc.__cause__
    if exc.status_code != 500 or not isinstance(cause, msgspec.ValidationError):
        return None
    message, _, where = str(cause).rpartition(" - at `")
    if not where.startswith("$.data"):
        return None
    key = where.rstrip("`").removeprefix("$.data").lstrip(".")
    detail = {"message": message, "key": key, "source": "body"}
    return error_response(400, "bad_request", "Validation failed for the request body", [detail])


def _body_too_large(request: Request[Any, Any, Any]) -> str:
    """Litestar's 413 (the route's `request_max_body_size`, central/app.py) with the limit named."""
    handler = request.scope.get("route_handler")
    limit = handler.resolve_request_max_body_size() if isinstance(handler, HTTPRouteHandler) else None
    what = f"this route's limit of {limit} bytes" if limit else "this route's limit"
    return (
        f"the request body is over {what} (photo uploads: "
        "FACEGATE_MAX_PHOTO_BYTES x FACEGATE_MAX_PHOTOS_PER_REQUEST + 1 MiB; other routes: "
        "FACEGATE_MAX_BODY_BYTES): send less, or split it"
    )


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, HashFormatError):
        log.error("stored_hash_broken", extra={"error": str(exc)})
    else:
        log.exception("unhandled_error")
    return error_response(500, "internal_error", "the server failed; the request id is in its log")


def _facegate_error(request: Request[Any, Any, Any], exc: FacegateError) -> Response[dict[str, Any]]:
    if isinstance(exc, DatabaseUnavailableError):
        return _database_error(request, exc)
    if isinstance(exc, MqttError):
        log.error("broker_unavailable", extra={"error": str(exc)})
        return error_response(503, "broker_unavailable", f"the MQTT broker failed: {exc}")
    return _unexpected(request, exc)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: _api_error,
    AuthError: _auth_error,
    Forbidden: _forbidden,
    ImageError: _image_error,
    StorageError: _storage_error,
    psycopg.Error: _database_error,
    HTTPException: _http_exception,
    FacegateError: _facegate_error,
    Exception: _unexpected,
}
