"""Mosquitto 2's `acl_file`: who may publish (write) and receive (read) which topics.

Syntax (mosquitto.conf(5)): `user <name>` starts that user's block; `topic [read|write|readwrite|deny]
<filter>` lines apply to the current user (before any `user` line: to clients without a user name);
`pattern [access] <filter>` lines apply to everyone, with `%u` (user name) and `%c` (client id) replaced.
The access defaults to readwrite. As in Mosquitto's own check: `deny` lines that match refuse first, then
any matching line granting the access allows; nothing matching refuses. A client whose user name or id
holds `+` or `#` gets nothing from `pattern` lines. Without an acl_file everything is allowed.

As in Mosquitto 2.0, subscribing is always granted; read rights are checked on every message delivered
(retained ones included), so a subscription to a topic a user may not read simply receives nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConfigError
from demo.embedded_broker.topics import matches

DENY, READ, WRITE = 0, 1, 2
ACCESS = {"read": READ, "write": WRITE, "readwrite": READ | WRITE, "deny": DENY}


@dataclass(frozen=True, slots=True)
class Rule:
    access: int
    topic_filter: str


@dataclass(frozen=True, slots=True)
class Acl:
    users: Mapping[str | None, tuple[Rule, ...]] = field(default_factory=dict)
    patterns: tuple[Rule, ...] = ()
    enabled: bool = False  # False: no acl_file, everything allowed

    @classmethod
    def load(cls, path: Path) -> Acl:
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"cannot read the ACL file {path}: {err.strerror}") from err
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, name: str = "acl") -> Acl:
        users: dict[str | None, list[Rule]] = {None: []}
        patterns: list[Rule] = []
        user: str | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, _, rest = line.partition(" ")
            if key == "user" and rest.strip():
                user = rest.strip()
                users.setdefault(user, [])
            elif key in ("topic", "pattern") and rest.strip():
                rule = _rule(rest.strip())
                (patterns if key == "pattern" else users[user]).append(rule)
            else:
                raise ConfigError(f"{name} line {number} ({line!r}): expected user, topic or pattern")
        return cls({u: tuple(rules) for u, rules in users.items()}, tuple(patterns), enabled=True)

    def allows(self, username: str | None, client_id: str, topic: str, access: int) -> bool:
        if not self.enabled:
            return True
        rules = list(self.users.get(username, ()))
        if not any(c in (username or "") + client_id for c in "+#"):
            rules += [
                Rule(p.access, _substitute(p.topic_filter, username, client_id))
                for p in self.patterns
                if username is not None or "%u" not in p.topic_filter
            ]
        matching = [rule for rule in rules if matches(rule.topic_filter, topic)]
        if any(rule.access == DENY for rule in matching):
            return False
        return any(rule.access & access for rule in matching)


def _rule(rest: str) -> Rule:
    first, _, topic_filter = rest.partition(" ")
    if first in ACCESS and topic_filter.strip():
        return Rule(ACCESS[first], topic_filter.strip())
    return Rule(READ | WRITE, rest)


def _substitute(topic_filter: str, username: str | None, client_id: str) -> str:
    return topic_filter.replace("%c", client_id).replace("%u", username or "")
