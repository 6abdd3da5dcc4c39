"""A small Dockerfile reader for the image tests: instructions, stages, build arguments, COPY paths.

It understands what Dockerfile.edge and Dockerfile.central use (comments, line continuations, global
and per-stage ARG, ENV, `${VAR}` / `$VAR` / `${VAR:-default}`, stages named by an argument, COPY
with and without --from, exec-form JSON), and .dockerignore patterns with Docker's rules (last match
wins, `!` re-includes, a pattern that matches a folder matches everything in it).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: its keyword, its --flags, the rest of its text and its first line number."""

    keyword: str
    flags: dict[str, str]
    text: str
    line: int

    def words(self) -> list[str]:
        """The arguments: a JSON list in exec form, shell words otherwise."""
        if self.text.startswith("["):
            value = json.loads(self.text)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return shlex.split(self.text)


@dataclass(slots=True)
class Stage:
    """A FROM and what follows it, with the base and variables resolved for one set of build args."""

    index: int
    name: str | None
    base: str  # after substitution: an image reference or an earlier stage's name
    parent: Stage | None
    instructions: list[Instruction]
    env: dict[str, str] = field(default_factory=dict)

    def chain(self) -> list[Stage]:
        """This stage and the stages it is built on, nearest first."""
        stages: list[Stage] = []
        stage: Stage | None = self
        while stage is not None:
            stages.append(stage)
            stage = stage.parent
        return stages

    def image(self) -> str:
        """The external image at the bottom of the chain."""
        return self.chain()[-1].base

    def all(self, keyword: str) -> list[Instruction]:
        """Instructions of `keyword` in the chain, oldest first (later ones override earlier ones)."""
        return [i for stage in reversed(self.chain()) for i in stage.instructions if i.keyword == keyword]


def expand(text: str, variables: dict[str, str]) -> str:
    """Substitute ${VAR}, $VAR and ${VAR:-default}; unknown variables become empty, as in Docker."""

    def one(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        value = variables.get(name, "")
        if not value and match.group("default") is not None:
            return match.group("default")
        return value

    return _VAR.sub(one, text)


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and continuation lines joined."""
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        result.append(_instruction(" ".join(pending), start))
        pending = []
    if pending:
        result.append(_instruction(" ".join(pending), start))
    return result


def _instruction(joined: str, line: int) -> Instruction:
    keyword, _, rest = joined.partition(" ")
    flags: dict[str, str] = {}
    rest = rest.strip()
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        key, _, value = flag[2:].partition("=")
        flags[key] = value
        rest = rest.strip()
    return Instruction(keyword.upper(), flags, rest, line)


def stages(text: str, build_args: dict[str, str] | None = None) -> list[Stage]:
    """The stages, resolved for `build_args` over the ARG defaults."""
    overrides = build_args or {}
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    current: Stage | None = None
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.words()
            base = expand(words[0], global_args)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            parent = next((s for s in result if s.name is not None and s.name == base), None)
            current = Stage(len(result), name, base, parent, [])
            current.env = dict(parent.env) if parent else {}
            result.append(current)
        elif current is None:
            if instruction.keyword == "ARG":
                key, _, default = instruction.text.partition("=")
                global_args[key] = overrides.get(key, default)
        else:
            _apply(current, instruction, global_args, overrides)
    return result


def _apply(
    stage: Stage, instruction: Instruction, global_args: dict[str, str], overrides: dict[str, str]
) -> None:
    if instruction.keyword == "ARG":
        for word in instruction.words():
            key, has_default, default = word.partition("=")
            stage.env[key] = overrides.get(
                key, expand(default, stage.env) if has_default else global_args.get(key, "")
            )
    elif instruction.keyword == "ENV":
        for word in instruction.words():
            key, _, value = word.partition("=")
            stage.env[key] = expand(value, stage.env)
    stage.instructions.append(
        Instruction(
            instruction.keyword, instruction.flags, expand(instruction.text, stage.env), instruction.line
        )
        if instruction.keyword in {"RUN", "COPY", "USER", "LABEL", "EXPOSE", "WORKDIR"}
        else instruction
    )


def copied_from(stage: Stage, image_path: str, context: Path) -> str | None:
    """The build-context path that a COPY of this stage's chain put at `image_path`, or None.

    Docker's rules: a folder source copies its contents into the destination; a file source lands at
    the destination, or inside it when the destination ends with "/" or there are several sources.
    """
    found: str | None = None
    for copy in stage.all("COPY"):
        if "from" in copy.flags:
            continue
        *sources, dest = copy.words()
        for raw in sources:
            source = posixpath.normpath(raw)
            target = posixpath.normpath(dest)
            if not (context / source).is_dir() and (dest.endswith("/") or len(sources) > 1):
                target = posixpath.join(target, posixpath.basename(source))
            if image_path == target:
                found = source
            elif image_path.startswith(target + "/"):
                found = posixpath.join(source, image_path[len(target) + 1 :])
    return found


class DockerIgnore:
    """.dockerignore rules: last matching pattern wins; a match on a parent folder counts."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
            self.rules.append((include, re.compile(_glob_regex(pattern))))

    def excluded(self, path: str) -> bool:
        parts = posixpath.normpath(path).split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for include, regex in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                verdict = not include
        return verdict


def _glob_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)
