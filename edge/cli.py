"""`facegate edge ...`: the edge box's commands. Each module registers its own sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from edge.config import cli as config_cli
    from edge.gallery import cli as gallery_cli

    parser = sub.add_parser("edge", help="the edge box: daemon, configuration, local gallery")
    esub = parser.add_subparsers(dest="edge_command", required=True, metavar="ACTION")
    run = esub.add_parser("run", help="run the edge daemon until SIGTERM or SIGINT")
    run.add_argument("--config", required=True, type=Path, help="the device file (YAML)")
    run.set_defaults(handler=run_edge)
    config_cli.register(esub)
    gallery_cli.register(esub)


def run_edge(args: argparse.Namespace) -> int:
    from edge.daemon import run_daemon

    return run_daemon(args.config)
