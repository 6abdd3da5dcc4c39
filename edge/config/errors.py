"""msgspec's validation errors turned into problems that name the field path, as many as can be found.

msgspec stops at the first error of a document. To report more, a failing Struct is converted again
field by field (and a failing list item by item), so every section and camera reports its own problem.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args, get_origin

import msgspec

_MESSAGE = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_WORDS = {"`array`": "list", "`object`": "mapping", "`": ""}
SECRET_FIELDS = frozenset({"password", "secret"})


def join(path: str, key: str | int) -> str:
    """`cameras` + 1 -> `cameras[1]`; `broker` + `url` -> `broker.url`; `` + `site` -> `site`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _lookup(value: Any, relative: str) -> tuple[bool, Any]:
    """The value at a msgspec path such as `.cameras[1].fps_cap` inside `value`, if it is there."""
    for name, index in _STEP.findall(relative):
        if name and isinstance(value, dict) and name in value:
            value = value[name]
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return False, None
    return True, value


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def translate(error: str, path: str, value: Any, kind: Any = None) -> str:
    """One msgspec error message, raised converting `value` found at `path` to `kind`, as a clean problem."""
    match = _MESSAGE.match(error)
    message, relative = (match["message"], match["path"] or "") if match else (error, "")
    where = (path + relative).lstrip(".")
    if not relative and get_origin(kind) is Literal:
        choices = ", ".join(repr(choice) for choice in get_args(kind))
        return f"{where or 'top level'}: must be one of {choices}, got {_shown(value)}"
    if unknown := _UNKNOWN.match(message):
        return f"unknown field {unknown['name']!r} at {where or 'top level'}"
    if missing := _MISSING.match(message):
        return f"{join(where, missing['name'])}: required field missing"
    for word, plain in _WORDS.items():
        message = message.replace(word, plain)
    found, bad = _lookup(value, relative)
    secret = where.rsplit(".", 1)[-1] in SECRET_FIELDS
    if found and not secret and "got" not in message:
        message += f", got {_shown(bad)}"
    if not relative and kind is str and not isinstance(value, dict | list | None):
        message += " (put it in quotes)"
    return f"{where or 'top level'}: {message}"


def _struct_problems(value: dict[Any, Any], kind: type[msgspec.Struct], path: str) -> list[str]:
    fields = {field.encode_name: field for field in msgspec.structs.fields(kind)}
    problems = []
    for key, item in value.items():
        if key in fields:
            problems += conversion_problems(item, fields[key].type, join(path, key))
        else:
            problems.append(f"unknown field {key!r} at {path or 'top level'}")
    for name, field in fields.items():
        required = field.default is msgspec.NODEFAULT and field.default_factory is msgspec.NODEFAULT
        if required and name not in value:
            problems.append(f"{join(path, name)}: required field missing")
    return problems


def _nested_problems(value: Any, kind: Any, path: str) -> list[str]:
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and isinstance(value, dict):
        return _struct_problems(value, kind, path)
    args = get_args(kind)
    if get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in conversion_problems(item, args[0], join(path, i))]
    return []


def conversion_problems(value: Any, kind: Any, path: str = "") -> list[str]:
    """Every problem found converting `value` (found at `path`) to `kind`; empty when it converts."""
    try:
        msgspec.convert(value, type=kind)
    except msgspec.ValidationError as err:
        return _nested_problems(value, kind, path) or [translate(str(err), path, value, kind)]
    return []
