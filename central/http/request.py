"""Central's request class: a JSON body is checked for nesting depth before it is decoded.

msgspec (and later the JSON encoder of psycopg and of the response) walks nested arrays and objects
recursively: a body nested 100,000 deep raised RecursionError, a 500. `CentralRequest.json` refuses a
body nested more than MAX_JSON_DEPTH levels with 400 `json_too_deep` before any decoder sees it.

The depth is measured without recursion and in linear time: strings are cut out (an unterminated one
runs to the end), the brackets left are folded into `{` and `}`, and each pass removes every innermost
`{}` pair; the passes needed plus the brackets left open bound the depth. Otherwise malformed JSON is
left to the decoder, which answers 400 with its own message.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from central.errors import ApiError

MAX_JSON_DEPTH = 32
"""Levels of arrays and objects a request body may nest (the deepest API body needs 4; a person's
`metadata` has its own, smaller limit in central/schemas.py)."""

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_FOLD = bytes.maketrans(b"[]", b"{}")


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `body` nests arrays and objects more than `limit` levels deep (brackets
    left open count as levels: a decoder recurses into them before it finds the text cut short)."""
    brackets = _STRING.sub(b"", body).translate(None, _BRACKETS).translate(_FOLD)
    passes = 0
    while b"{}" in brackets:
        if passes == limit:
            return True
        brackets = brackets.replace(b"{}", b"")
        passes += 1
    return passes + brackets.count(b"{") > limit


class CentralRequest(Request[Any, Any, Any]):
    """Litestar's Request with the depth check on JSON bodies (central/app.py's `request_class`)."""

    async def json(self) -> Any:
        if json_too_deep(await self.body()):
            raise ApiError(
                f"the JSON body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep: flatten it",
                code="json_too_deep",
            )
        return await super().json()
