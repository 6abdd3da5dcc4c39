"""Logins from Mosquitto's password file: `username:$7$...` lines, checked with central's own `$7$`
(PBKDF2-HMAC-SHA512) code, the code that wrote them (central/auth/passwords.py).

As Mosquitto does, a malformed line (or a hash other than `$7$`) is skipped: that user cannot log in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from central.auth.errors import HashFormatError
from central.auth.passwords import parse_mosquitto_hash, verify_mosquitto
from common.errors import ConfigError

log = logging.getLogger("demo.embedded_broker")


@dataclass(frozen=True, slots=True)
class Passwords:
    hashes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Passwords:
        try:
            return cls.parse(path.read_text())
        except OSError as err:
            raise ConfigError(f"cannot read the password file {path}: {err.strerror}") from err

    @classmethod
    def parse(cls, text: str) -> Passwords:
        hashes: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            username, _, stored = line.partition(":")
            try:
                parse_mosquitto_hash(stored.strip())
            except HashFormatError as err:
                log.warning("password_line_skipped", extra={"line": number, "reason": str(err)})
                continue
            hashes[username] = stored.strip()
        return cls(hashes)

    def verify(self, username: str, password: bytes | None) -> bool:
        stored = self.hashes.get(username)
        if stored is None or password is None:
            return False
        try:
            return verify_mosquitto(password.decode(), stored)
        except UnicodeDecodeError:
            return False

    def __contains__(self, username: object) -> bool:
        return username in self.hashes
