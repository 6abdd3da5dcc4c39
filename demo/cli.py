"""`facegate demo [--duration S] [--state DIR] [--clean]` (also `python -m demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from demo.state import STATE_DEFAULT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds of live events, then the summary (0: until Ctrl-C)",
    )
    parser.add_argument(
        "--until-seen",
        action="store_true",
        help="end the live window as soon as every enrolled person was recognised at both sites and an "
        "unknown face reported at each (at most --duration; a quick check that the system works)",
    )
    parser.add_argument("--state", type=Path, default=STATE_DEFAULT, help="state folder (default: .demo)")
    parser.add_argument("--clean", action="store_true", help="stop what a killed demo left, delete the state")


def handle(args: argparse.Namespace) -> int:
    from demo.run import Options, clean, run

    if args.clean:
        return clean(args.state)
    return run(Options(args.state, args.duration, args.until_seen))


def register(sub: Any) -> None:
    """Add `demo` to the `facegate` command line."""
    cmd = sub.add_parser("demo", help="the whole system on one machine, embedded defaults (docs/demo.md)")
    add_arguments(cmd)
    cmd.set_defaults(handler=handle)
