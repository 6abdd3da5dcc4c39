"""Console helpers shared by the console's integration, browser and screenshot code: sign a Litestar
TestClient in, read the CSRF token of a page."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient

ORIGIN = "http://testserver.local"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def sign_in(client: TestClient[Any], key: str) -> str:
    """Sign `client` in with `key` (its cookie jar keeps the session); returns the CSRF token."""
    client.cookies.clear()
    answer = client.post(
        "/console/signin", data={"key": key}, headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/console/people").text)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)
