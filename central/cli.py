"""`facegate central ...`: central's commands. Only `migrate` exists yet (the service is being built)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from common.errors import ConfigError

DATABASE_URL_ENV = "FACEGATE_DATABASE_URL"


def register(sub: Any) -> None:
    parser = sub.add_parser("central", help="central: database migrations (the API service is being built)")
    csub = parser.add_subparsers(dest="central_command", required=True, metavar="ACTION")
    migrate = csub.add_parser(
        "migrate", help="apply the database migrations (idempotent; safe to run from replicas)"
    )
    migrate.add_argument("--database-url", help=f"PostgreSQL URL (default: ${DATABASE_URL_ENV})")
    migrate.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    from central.db.migrations import migrate

    dsn = args.database_url or os.environ.get(DATABASE_URL_ENV, "")
    if not dsn:
        raise ConfigError(f"no database: pass --database-url or set {DATABASE_URL_ENV}")
    applied = migrate(dsn)
    for name in applied:
        print(f"applied {name}")
    print(f"{len(applied)} migration(s) applied; the database is up to date")
    return 0
