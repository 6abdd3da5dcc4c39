"""Input limits that need no service: patterns anchored against a trailing newline everywhere (schemas,
topic segments, broker logins), the JSON depth check, and the secret key's minimum length at start-up."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from central.app import create_app
from central.auth.passwords import mosquitto_hash
from central.broker.acl import CentralAccount, render_acl_file
from central.broker.registry import build_registry
from central.http.request import MAX_JSON_DEPTH, json_too_deep
from central.schemas import ExternalId, Name, Slug
from central.settings import CentralSettings
from central.storage import FileSettings
from common.errors import ConfigError
from common.topics import TopicError, edge_topic, parse_topic, segment

SCHEMA_MODULES = [
    "central.schemas",
    "central.auth.schemas",
    "central.people.schemas",
    "central.galleries.schemas",
    "central.fleet.schemas",
    "central.enrollment.schemas",
    "central.events.schemas",
    "central.models.schemas",
    "common.messages",
]


def patterns(info: Any) -> Iterator[str]:
    """Every string pattern in a msgspec type, walked through containers, unions and Structs."""
    if isinstance(info, msgspec.inspect.StrType) and info.pattern is not None:
        yield info.pattern
    elif isinstance(info, msgspec.inspect.StructType):
        for field in info.fields:
            yield from patterns(field.type)
    elif isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            yield from patterns(member)
    elif isinstance(info, msgspec.inspect.Metadata):
        yield from patterns(info.type)
    for attribute in ("item_type", "key_type", "value_type"):
        if hasattr(info, attribute):
            yield from patterns(getattr(info, attribute))
    if isinstance(info, msgspec.inspect.TupleType):
        for member in info.item_types:
            yield from patterns(member)


def all_patterns() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in SCHEMA_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, msgspec.Struct) and value.__module__ == name:
                for pattern in patterns(msgspec.inspect.type_info(value)):
                    found[f"{name}.{attr}: {pattern}"] = pattern
    return found


def test_every_schema_pattern_is_anchored_against_a_trailing_newline() -> None:
    found = all_patterns()
    assert len(found) >= 3, found  # Slug, Name, ExternalId at least
    loose = [
        where
        for where, pattern in found.items()
        if not (pattern.startswith(r"\A") and pattern.endswith(r"\Z"))
    ]
    assert not loose, f"patterns `$` would let a trailing newline through: {loose}"


@pytest.mark.parametrize(("kind", "good"), [(Slug, "north"), (Name, "Alice"), (ExternalId, "E-1")])
def test_schema_text_types_refuse_a_trailing_newline(kind: Any, good: str) -> None:
    assert msgspec.convert(good, kind) == good
    with pytest.raises(msgspec.ValidationError, match="matching regex"):
        msgspec.convert(good + "\n", kind)


@pytest.mark.parametrize("value", ["north\n", "north\r\n", "\nnorth", "no rth", ""])
def test_topic_segment_refuses_newlines_and_other_characters(value: str) -> None:
    with pytest.raises(TopicError):
        segment(value, "site")


def test_topics_never_carry_a_newline() -> None:
    with pytest.raises(TopicError):
        edge_topic("north", "door\n", "events")
    with pytest.raises(TopicError):
        parse_topic("facegate/v1/north/door\n/events")


def test_broker_acl_cannot_get_a_line_from_a_newline_in_an_id() -> None:
    """A site, edge or central login with a trailing newline would add its own line to the ACL file."""
    hashed = mosquitto_hash("pw")
    with pytest.raises(TopicError):
        CentralAccount("central\n", hashed)
    registry = build_registry([("north", "door\ntopic readwrite #", hashed)], [])
    with pytest.raises(TopicError):
        render_acl_file(registry, [CentralAccount("central", hashed)])


def test_validators_use_fullmatch_not_dollar_anchors() -> None:
    """Every `re` validator in the product packages: compiled `^...$` patterns used with `match`/`search`
    let a trailing newline through; the product uses `fullmatch` or `\\A...\\Z`."""
    root = Path(__file__).resolve().parents[3]
    dollar = re.compile(r"""re\.compile\(r?["']\^[^"']*\$["']""")
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for package in ("central", "common", "edge", "demo")
        for path in (root / package).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if dollar.search(line) or re.search(r"""pattern=r?["']\^""", line)
    ]
    allowed = {"edge/config/errors.py"}  # parses msgspec's own error messages, validates nothing
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b'{"a": [1, {"b": [2]}]}', False),
        (b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, False),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), True),
        (b"[" * 100_000 + b"]" * 100_000, True),
        (b"[" * 100_000, True),  # left open: a decoder recurses before it finds the end
        (b'{"s": "' + b"[" * 100 + b'"}', False),  # brackets in a string
        (b'{"s": "\\"' + b"[" * 100 + b'"}', False),  # after an escaped quote, still in the string
        (b'"\\' + b"[" * 100, False),  # an unterminated string runs to the end
    ],
)
def test_json_depth_is_measured_outside_strings(body: bytes, deep: bool) -> None:
    assert json_too_deep(body) is deep


def settings_env(tmp_path: Path, secret: str) -> dict[str, str]:
    return {
        "FACEGATE_DATABASE_URL": "postgresql://x/y",
        "FACEGATE_STORAGE_DIR": str(tmp_path),
        "FACEGATE_SECRET_KEY": secret,
    }


def test_secret_key_under_32_bytes_is_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"FACEGATE_SECRET_KEY is 20 bytes; it must be at least 32"
    ) as caught:
        CentralSettings.from_env(settings_env(tmp_path, "k" * 20))
    assert "secrets.token_urlsafe" in str(caught.value)
    assert CentralSettings.from_env(settings_env(tmp_path, "k" * 32)).secret_key == "k" * 32


def test_create_app_refuses_a_short_secret_key_however_settings_were_built(tmp_path: Path) -> None:
    settings = CentralSettings(
        database_url="postgresql://x/y",
        secret_key="k" * 20,
        storage=FileSettings(root=tmp_path, secret_key="k" * 32),
    )
    with pytest.raises(ConfigError, match="at least 32"):
        create_app(settings)
