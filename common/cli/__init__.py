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


def registered(group: str) -> list[Register]:
    """The `register(subparsers)` functions of an entry point group, in the order of their names."""
    found = sorted(entry_points(group=group), key=lambda point: point.name)
    if not found:
        raise SystemExit(
            f"facegate: no commands registered under {group!r}; is the package installed (pip install -e .)?"
        )
    registers: list[Register] = [point.load() for point in found]
    return registers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facegate", description="Facegate: edge face recognition.")
    parser.add_argument("--log-level", default="warning", help="stderr log level (default: warning)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in registered(COMMANDS_GROUP):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the command, map errors to exit statuses."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
