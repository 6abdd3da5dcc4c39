"""Secrets out of log lines: a logging filter that masks them in the message and in every string field.

What is masked (the value becomes `***`, the name stays, so the line still says what was there):
- query parameters and `name=value` pairs named (or ending in `_`/`-`/`.` plus) token, key, api_key,
  secret, password, passwd, pwd, auth, signature, sig or credential (`/ws/events?token=...`,
  `?api_key=...`, a presigned URL's `X-Amz-Signature=`);
- Facegate API keys and edge credentials anywhere (`fg_<prefix>_<secret>`: the secret part);
- bearer credentials (`Bearer <anything>`) and the password of URLs with user info
  (`postgresql://user:***@host/db`);
- JWTs anywhere (three base64url parts starting `eyJ`).

`install_redaction()` puts one `SecretFilter` on the given handlers and on uvicorn's and websockets'
loggers (uvicorn logs `"WebSocket /ws/events?token=..." [accepted]` on `uvicorn.error`), so it holds
whichever handler a record ends up on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"
_NAMES = (
    r"(?:[A-Za-z0-9]+[_.-])*(?:token|api_?key|key|secret|passw(?:or)?d|pwd|auth|signature|sig|credential)"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"(?i)(?<![A-Za-z0-9])({_NAMES})(=|%3D)[^&\s\"'<>;,]+"), rf"\1\2{MASK}"),
    (re.compile(r"\b(fg_[a-z0-9]{8}_)[A-Za-z0-9_-]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), rf"\1{MASK}"),
    (re.compile(r"\b([a-z][a-z0-9+.-]*://[^/\s:@\"']*:)[^@\s/\"']+@"), rf"\1{MASK}@"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
)
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
THIRD_PARTY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "httpx", "paho")


def redact(text: str) -> str:
    """`text` with every secret it holds masked (see the module docstring)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretFilter(logging.Filter):
    """Masks secrets in a record's message (formatted with its args) and in its string `extra` fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        for name, value in list(record.__dict__.items()):
            if isinstance(value, str) and name not in _RESERVED and not name.startswith("_"):
                record.__dict__[name] = redact(value)
        return True


def install_redaction(handlers: Iterable[logging.Handler]) -> SecretFilter:
    """One SecretFilter on `handlers` and on the third-party loggers that log request lines."""
    secret_filter = SecretFilter()
    for handler in handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(secret_filter)
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretFilter) for f in logger.filters):
            logger.addFilter(secret_filter)
    return secret_filter
