"""The request id of the request being served: in every log line (common.log.context) and error body."""

from __future__ import annotations

from common.log import context


def current_request_id() -> str:
    return context.get().get("request_id", "")
