"""`facegate edge config validate FILE...`: check device files (or profiles) against the schema.

One line per file on stdout, in the order given, so the output reads as a report and pipes whole:
`FILE: ok` or `FILE: error: PROBLEM; PROBLEM...`, each problem naming its field path; a valid file with
something unsafe in it (a broker password over plain mqtt:// to another host) adds a
`FILE: warning: MESSAGE` line after its `ok`. Exit status 0 when every file is valid (warnings
included), 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.config.loader import check_files

EXIT_OK, EXIT_INVALID = 0, 2


def register(sub: Any) -> None:
    """Add `config validate` to the sub-commands of `facegate edge`."""
    parser = sub.add_parser("config", help="check device configuration files")
    csub = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    validate = csub.add_parser(
        "validate",
        help="check device files against the schema (exit 0: all valid, 2: any invalid)",
        description="Check each FILE; print `FILE: ok` or `FILE: error: MESSAGE` on stdout, one line each.",
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE", help="device file (YAML)")
    validate.add_argument(
        "--profile", action="store_true", help="the files are profiles, not device files (firmware_config/)"
    )
    validate.add_argument(
        "--no-secrets",
        action="store_true",
        help="do not read secret files or environment variables (checking files away from the device)",
    )
    validate.set_defaults(handler=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    results = check_files(args.files, profile=args.profile, resolve=not args.no_secrets)
    for path, problem, warned in results:
        sys.stdout.write(f"{path}: ok\n" if problem is None else f"{path}: error: {problem}\n")
        for warning in warned:
            sys.stdout.write(f"{path}: warning: {warning}\n")
    return EXIT_OK if all(problem is None for _, problem, _ in results) else EXIT_INVALID
