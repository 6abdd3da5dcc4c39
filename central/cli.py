"""`facegate central ...`: serve the API, apply migrations, create an API key."""

from __future__ import annotations

import argparse
import os
from typing import Any

from central.broker import commands as broker_commands
from common.errors import ConfigError

DATABASE_URL_ENV = "FACEGATE_DATABASE_URL"


def register(sub: Any) -> None:
    parser = sub.add_parser("central", help="central: the API service, migrations, API keys")
    csub = parser.add_subparsers(dest="central_command", required=True, metavar="ACTION")

    serve = csub.add_parser("serve", help="run the API under uvicorn (settings: FACEGATE_* variables)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080)")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (default: 1; each has its own pools)"
    )
    serve.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")
    serve.set_defaults(handler=run_serve)

    migrate = csub.add_parser(
        "migrate", help="apply the database migrations (idempotent; safe to run from replicas)"
    )
    migrate.add_argument("--database-url", help=f"PostgreSQL URL (default: ${DATABASE_URL_ENV})")
    migrate.set_defaults(handler=run_migrate)

    key = csub.add_parser("create-key", help="create an API key and print it once (the first admin key)")
    key.add_argument("--database-url", help=f"PostgreSQL URL (default: ${DATABASE_URL_ENV})")
    key.add_argument(
        "--scope", default="admin", choices=["admin", "operator", "viewer"], help="default: admin"
    )
    key.add_argument("--name", default="", help="a label shown in key lists")
    key.add_argument("--site", action="append", default=[], help="restrict the key to this site (repeatable)")
    key.set_defaults(handler=run_create_key)

    enroll = csub.add_parser(
        "enroll", help="bulk-enroll a folder (one sub-folder of photos per person) through a running central"
    )
    enroll.add_argument(
        "folder", metavar="DIR", help="folder holding one folder per person (name = external id)"
    )
    enroll.add_argument("--url", help="central's base URL (default: $FACEGATE_URL or http://127.0.0.1:8080)")
    enroll.add_argument("--key", help="an operator API key (default: $FACEGATE_API_KEY)")
    enroll.add_argument("--poll", type=float, default=1.0, help="seconds between progress polls (default: 1)")
    enroll.add_argument(
        "--timeout", type=float, default=3600.0, help="give up after this many seconds (default: 3600)"
    )
    enroll.set_defaults(handler=run_enroll)
    broker_commands.register(csub)
    _register_backup(csub)


def _register_backup(csub: Any) -> None:
    backup = csub.add_parser(
        "backup",
        help="pg_dump the database and copy the object store into DIR/<UTC time>/ (settings: FACEGATE_*)",
    )
    backup.add_argument("--out", required=True, metavar="DIR", help="folder holding the backups")
    backup.add_argument("--keep", type=int, default=7, help="complete backups to keep in DIR (default: 7)")
    backup.add_argument(
        "--offsite-bucket",
        help="also copy the backup to this S3 bucket (default: $FACEGATE_OFFSITE_S3_BUCKET)",
    )
    backup.add_argument(
        "--offsite-endpoint", help="the off-site S3 endpoint (default: $FACEGATE_OFFSITE_S3_ENDPOINT)"
    )
    backup.set_defaults(handler=run_backup)
    restore = csub.add_parser(
        "restore", help="restore a backup folder into the database and object store (settings: FACEGATE_*)"
    )
    restore.add_argument("folder", metavar="BACKUP", help="one backup folder, DIR/<UTC time>")
    restore.add_argument(
        "--force", action="store_true", help="restore even into a non-empty database or store"
    )
    restore.set_defaults(handler=run_restore)


def _dsn(args: argparse.Namespace) -> str:
    dsn: str = args.database_url or os.environ.get(DATABASE_URL_ENV, "")
    if not dsn:
        raise ConfigError(f"no database: pass --database-url or set {DATABASE_URL_ENV}")
    return dsn


def run_migrate(args: argparse.Namespace) -> int:
    from central.db.migrations import migrate

    applied = migrate(_dsn(args))
    for name in applied:
        print(f"applied {name}")
    print(f"{len(applied)} migration(s) applied; the database is up to date")
    return 0


def run_create_key(args: argparse.Namespace) -> int:
    import psycopg

    from central.audit import record_sync
    from central.auth.repository import create_key_sync, unknown_sites_sync
    from central.db.migrations import migrate

    dsn = _dsn(args)
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        unknown = unknown_sites_sync(conn, args.site)
        if unknown:
            raise ConfigError(f"unknown sites {unknown}: create them through the API first")
        try:
            issued = create_key_sync(conn, args.name, args.scope, args.site)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        record_sync(conn, "cli", "api_key.create", "api_key", issued.prefix)
    print(issued.display)
    return 0


def run_enroll(args: argparse.Namespace) -> int:
    from pathlib import Path

    from central.enrollment import jobs_client

    key = args.key or os.environ.get("FACEGATE_API_KEY", "")
    url = args.url or jobs_client.default_url()
    return jobs_client.run(Path(args.folder), url, key, args.poll, args.timeout)


def run_serve(args: argparse.Namespace) -> int:
    from central import serve
    from central.settings import CentralSettings

    settings = CentralSettings.from_env(os.environ)  # fail here, naming the variable, before uvicorn starts
    if args.workers > 1 and settings.mqtt_url:
        # Every worker would log in as the same user, whose client id the broker binds to that login:
        # each would take the others' session over.
        raise ConfigError(
            "--workers > 1 with FACEGATE_MQTT_URL set: the workers would share one broker login and so one "
            "MQTT session; run one worker per replica and scale with replicas (each with its own broker "
            "login, FACEGATE_MQTT_USERNAME)"
        )
    if settings.metrics_port == args.port:
        raise ConfigError(f"FACEGATE_METRICS_PORT={settings.metrics_port} is the API's --port: pick another")
    serve.run(args.host, args.port, settings.metrics_port, workers=args.workers, log_level=args.log_level)
    return 0


def _backup_targets(*, writing: bool) -> tuple[str, Any]:
    """The database URL and object store from the environment; the store's bucket/folders are created
    only when `writing` (a backup only reads, so it runs with read-only access to the store)."""
    from central.storage import FileStore, open_store

    dsn = os.environ.get(DATABASE_URL_ENV, "")
    if not dsn:
        raise ConfigError(f"no database: set {DATABASE_URL_ENV}")
    store = open_store(os.environ)
    if writing:
        store.ensure_buckets()
    elif isinstance(store, FileStore) and not (store.root / "data").is_dir():
        raise ConfigError(f"FACEGATE_STORAGE_DIR={store.root} holds no object store (no data/ folder)")
    return dsn, store


def run_backup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from central.backup.manifest import read_manifest
    from central.backup.offsite import copy_offsite, offsite_settings
    from central.backup.retention import apply_retention
    from central.backup.run import create_backup

    if args.keep < 1:
        raise ConfigError(f"--keep {args.keep}: keep at least 1 backup")
    offsite = offsite_settings(os.environ, args.offsite_bucket, args.offsite_endpoint)
    dsn, store = _backup_targets(writing=False)
    folder = create_backup(dsn, store, Path(args.out))
    manifest = read_manifest(folder)
    print(f"backup {folder}: database dump and {manifest.object_count} object(s)")
    if offsite is not None:
        copied = copy_offsite(offsite, folder, manifest)
        print(f"copied {copied} file(s) to s3://{offsite.bucket}/backups/{folder.name}/")
    for old in apply_retention(Path(args.out), args.keep):
        print(f"deleted old backup {old}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from central.backup.run import restore_backup

    dsn, store = _backup_targets(writing=True)
    done = restore_backup(dsn, store, Path(args.folder), force=args.force)
    print(f"restored {done.folder} (taken {done.manifest.created_at}) with {done.pg_restore}")
    migrations = done.manifest.migrations
    print(f"database: {len(migrations)} migration(s), last {migrations[-1] if migrations else '-'}")
    print(f"objects: {done.objects}")
    return 0
