"""Bad input on every route that takes a body, enumerated from the app's OpenAPI schema: each gets a 4xx
with a JSON message, never a 5xx or a silent success."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.support.central_app import Central

_PARAM = re.compile(r"\{(\w+)\}")


def _body_operations(central: Central) -> list[tuple[str, str, dict[str, Any]]]:
    spec = central.client.get("/schema/openapi.json").json()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in {"post", "put", "patch"} and "requestBody" in operation:
                found.append((method.upper(), path, operation["requestBody"]["content"]))
    return found


def _url(path: str) -> str:
    return _PARAM.sub(lambda m: "site-a" if "site" in m.group(1) else str(uuid.uuid4()), path)


@pytest.fixture
def body_operations(central: Central) -> list[tuple[str, str, dict[str, Any]]]:
    with central.db() as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('site-a', 'A')")
    found = _body_operations(central)
    assert found, "no operation with a request body in the schema"
    return found


def _check_4xx(response: Any, what: str, bad: list[str]) -> None:
    if not 400 <= response.status_code < 500:
        bad.append(f"{what}: {response.status_code} {response.text[:200]}")
    elif not response.json().get("message"):
        bad.append(f"{what}: no message")


def test_input_malformed_json_gets_4xx_everywhere(
    central: Central, body_operations: list[tuple[str, str, dict[str, Any]]]
) -> None:
    bad: list[str] = []
    for method, path, content in body_operations:
        if "application/json" not in content:
            continue
        for raw in (b"{not json", b"[1, 2", b'{"a": }', b"\xff\xfe", b"null"):
            response = central.client.request(
                method, _url(path), content=raw, headers={**central.admin, "Content-Type": "application/json"}
            )
            _check_4xx(response, f"{method} {path} {raw!r}", bad)
    assert not bad, "\n".join(bad)


def test_input_wrong_content_type_gets_4xx_everywhere(
    central: Central, body_operations: list[tuple[str, str, dict[str, Any]]]
) -> None:
    bad: list[str] = []
    for method, path, _ in body_operations:
        for content_type in ("text/plain", "application/xml"):
            response = central.client.request(
                method,
                _url(path),
                content=b"<a>1</a>",
                headers={**central.admin, "Content-Type": content_type},
            )
            _check_4xx(response, f"{method} {path} {content_type}", bad)
    assert not bad, "\n".join(bad)


def test_input_oversized_body_gets_413(
    central: Central, body_operations: list[tuple[str, str, dict[str, Any]]]
) -> None:
    limit = central.settings.max_body_bytes  # every route but the two uploads
    method, path, _ = next(op for op in body_operations if op[1] == "/api/v1/auth/keys")
    response = central.client.request(
        method,
        path,
        content=b"{" + b" " * (limit + 10) + b"}",
        headers={**central.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/people",
        "/api/v1/events",
        "/api/v1/galleries",
        "/api/v1/enrollment-jobs",
    ],
)
@pytest.mark.parametrize("limit", ["0", "-1", "501", "100000", "ten"])
def test_input_page_limit_outside_1_to_500_is_400(central: Central, path: str, limit: str) -> None:
    response = central.client.get(path, params={"limit": limit}, headers=central.admin)
    assert response.status_code == 400, response.text
    assert response.json()["message"]
