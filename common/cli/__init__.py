"""The `facegate` command line: one entry point; each package registers its own sub-commands.

`common` imports neither side: the commands are found through the `facegate.commands` entry points
(pyproject.toml), each a `register(subparsers)` function of the package that owns the command
(`common.cli.models`, `edge.cli`, `central.cli`, `demo.cli`, ...). The benchmarks under `facegate bench`
are found the same way (`facegate.bench`, see common/cli/bench.py).

Exit statuses: 0 success; 1 a comparison could not be made (verify: no usable face);
2 an input could not be read, or a usage error; 3 a model, configuration or setup error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from common.errors import ConfigError, FacegateError, ModelError
from common.log import setup_logging

EXIT_OK, EXIT_NO_FACE, EXIT_BAD_INPUT, EXIT_MODEL = 0, 1, 2, 3
COMMANDS_GROUP = "facegate.commands"
Register = Callable[[Any], None]


# common's own commands registered under another entry point's name
OWN_COMMANDS = {"detect": "faces", "embed": "faces", "verify": "faces"}
_words: list[str] = []  # the command words of the command line being parsed (see `command_words`)


def registered(group: str, only: str | None = None) -> list[Register]:
    """The `register(subparsers)` functions of an entry point group, in the order of their names; with
    `only` naming one of them, just that one (so a command imports only its own package: `facegate
    embed` need not import central's web framework). An unknown `only` loads them all, for argparse's
    own error and help."""
    found = sorted(entry_points(group=group), key=lambda point: point.name)
    if not found:
        raise SystemExit(
            f"facegate: no commands registered under {group!r}; is the package installed (pip install -e .)?"
        )
    chosen = [point for point in found if point.name == only] or found
    registers: list[Register] = [point.load() for point in chosen]
    return registers


def command_words(argv: Sequence[str]) -> list[str]:
    """The positional words of a command line before its first option after the command: `bench
    pipeline a.jpg` gives ["bench", "pipeline", "a.jpg"]; the top-level `--log-level X` is skipped."""
    words: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--log-level":
            skip = True
        elif token.startswith("-"):
            if words:
                break
        else:
            words.append(token)
    return words


def requested(depth: int) -> str | None:
    """The command word at `depth` (0: the command, 1: its sub-command) of the line being parsed."""
    return _words[depth] if len(_words) > depth else None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; given the command line, only the package that owns its command is imported."""
    _words[:] = command_words(argv)
    command = requested(0)
    parser = argparse.ArgumentParser(prog="facegate", description="Facegate: edge face recognition.")
    parser.add_argument("--log-level", default="warning", help="stderr log level (default: warning)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in registered(COMMANDS_GROUP, OWN_COMMANDS.get(command or "", command)):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the command, map errors to exit statuses."""
    line = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(line)
    args = parser.parse_args(line)
    setup_logging(args.log_level)
    try:
        status: int = args.handler(args)
    except ModelError as err:
        print(f"facegate: model error: {err}", file=sys.stderr)
        return EXIT_MODEL
    except ConfigError as err:
        print(f"facegate: configuration error: {err}", file=sys.stderr)
        return EXIT_MODEL
    except FacegateError as err:  # a file, database or service the command needs is unusable
        print(f"facegate: error: {err}", file=sys.stderr)
        return EXIT_MODEL
    except BrokenPipeError:
        return EXIT_OK
    return status


if __name__ == "__main__":
    sys.exit(main())
