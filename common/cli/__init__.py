"""The `facegate` command line: one entry point, sub-commands imported only when used.

Exit statuses: 0 success; 1 a comparison could not be made (verify: no usable face);
2 an input could not be read, or a usage error; 3 a model, configuration or setup error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common.errors import ConfigError, FacegateError, ModelError
from common.log import setup_logging

EXIT_OK, EXIT_NO_FACE, EXIT_BAD_INPUT, EXIT_MODEL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    from central import cli as central_cli
    from common.cli import bench, faces, models
    from demo import cli as demo_cli
    from edge import cli as edge_cli

    parser = argparse.ArgumentParser(prog="facegate", description="Facegate: edge face recognition.")
    parser.add_argument("--log-level", default="warning", help="stderr log level (default: warning)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models.register(sub)
    faces.register(sub)
    bench.register(sub)
    edge_cli.register(sub)
    central_cli.register(sub)
    demo_cli.register(sub)
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
