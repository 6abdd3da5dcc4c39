"""`facegate central broker-config` and `facegate central broker-hash`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from common.errors import ConfigError

DATABASE_URL_ENV = "FACEGATE_DATABASE_URL"


def register(csub: Any) -> None:
    """Add both commands to `facegate central`'s sub-parsers."""
    cmd = csub.add_parser(
        "broker-config",
        help="write mosquitto's password file, ACL file and mosquitto.conf from the edge registry",
    )
    cmd.add_argument("--out", required=True, metavar="DIR", help="folder for passwords, acl, mosquitto.conf")
    cmd.add_argument("--database-url", help=f"PostgreSQL URL (default: ${DATABASE_URL_ENV})")
    cmd.add_argument("--config-dir", help="the folder as the broker sees it (default: --out, absolute)")
    _listener_options(cmd)
    _sizing_options(cmd)
    reload = cmd.add_mutually_exclusive_group()
    reload.add_argument("--reload-pid", type=int, metavar="PID", help="SIGHUP this mosquitto afterwards")
    reload.add_argument("--reload-pidfile", metavar="FILE", help="SIGHUP the mosquitto whose pid is in FILE")
    cmd.add_argument("--force-reload", action="store_true", help="SIGHUP even if the files did not change")
    cmd.set_defaults(handler=run_broker_config)

    hash_cmd = csub.add_parser(
        "broker-hash",
        help="print the $7$ hash of a password read on stdin (for FACEGATE_BROKER_CENTRAL_HASH)",
    )
    hash_cmd.set_defaults(handler=run_broker_hash)


def _listener_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--listener-port", type=int, default=8883, help="TLS listener port (default: 8883)")
    cmd.add_argument("--bind-address", default="", help="TLS listener address (default: all interfaces)")
    cmd.add_argument("--cafile", default="/etc/mosquitto/certs/ca.crt", help="CA certificate (PEM)")
    cmd.add_argument("--certfile", default="/etc/mosquitto/certs/server.crt", help="server certificate")
    cmd.add_argument("--keyfile", default="/etc/mosquitto/certs/server.key", help="server private key")
    cmd.add_argument("--local-port", type=int, help="also a plain listener on 127.0.0.1 (default: none)")
    cmd.add_argument("--persistence-dir", default="/var/lib/mosquitto/", help="mosquitto's database folder")
    cmd.add_argument("--autosave-interval", type=int, default=60, help="seconds between saves (default: 60)")
    cmd.add_argument("--pid-file", help="have mosquitto write its pid here (default: none)")


def _sizing_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--batch-size", type=int, default=500, help="central's ingest batch size (default: 500)")
    cmd.add_argument("--events-per-s", type=float, default=0.5, help="events/s per edge (default: 0.5)")
    cmd.add_argument("--edges", type=int, default=10, help="edges the queue is sized for (default: 10)")
    cmd.add_argument("--outage-hours", type=float, default=2.0, help="central outage to queue (default: 2)")
    cmd.add_argument("--event-bytes", type=int, default=16384, help="average event size (default: 16384)")
    cmd.add_argument(
        "--max-packet-size", type=int, default=1024 * 1024, help="largest MQTT packet (default: 1 MiB)"
    )
    cmd.add_argument(
        "--client-expiration-hours", type=int, default=168, help="drop sessions idle this long (default: 168)"
    )


def run_broker_config(args: argparse.Namespace) -> int:
    import psycopg

    from central.broker.conf import PASSWORD_FILE, BrokerConf, QueueSizing
    from central.broker.files import pid_from_file, reload_broker, write_broker_files
    from central.broker.repository import load_registry_sync
    from central.broker.settings import central_accounts_from_env

    dsn: str = args.database_url or os.environ.get(DATABASE_URL_ENV, "")
    if not dsn:
        raise ConfigError(f"no database: pass --database-url or set {DATABASE_URL_ENV}")
    out = Path(args.out).absolute()
    central = central_accounts_from_env(os.environ, _read(out / PASSWORD_FILE))
    try:
        conf = BrokerConf(
            config_dir=Path(args.config_dir) if args.config_dir else out,
            cafile=args.cafile,
            certfile=args.certfile,
            keyfile=args.keyfile,
            port=args.listener_port,
            bind_address=args.bind_address,
            local_port=args.local_port,
            persistence_dir=args.persistence_dir,
            autosave_interval_s=args.autosave_interval,
            batch_size=args.batch_size,
            queue=QueueSizing(args.events_per_s, args.edges, args.outage_hours, args.event_bytes),
            max_packet_size=args.max_packet_size,
            client_expiration_hours=args.client_expiration_hours,
            pid_file=args.pid_file,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err
    with psycopg.connect(dsn) as conn:
        registry = load_registry_sync(conn)
    written = write_broker_files(out, registry, central, conf)
    for path in written.paths:
        _say(f"wrote {path}")
    names = ", ".join(repr(account.username) for account in central)
    _say(f"{written.edges} edge login(s) and central's login(s) {names}")
    if len(registry.edges) > conf.queue.edges:
        count = len(registry.edges)
        _say(f"warning: {count} edges registered, queues sized for {conf.queue.edges}: raise --edges")
    pid: int | None = args.reload_pid
    if args.reload_pidfile:
        pid = pid_from_file(Path(args.reload_pidfile))
    if pid is not None and not written.changed and not args.force_reload:
        _say("password and ACL files unchanged: no reload needed")
    elif pid is not None:
        reload_broker(pid)
        _say(f"sent SIGHUP to mosquitto (pid {pid}): it re-reads the password and ACL files")
    return 0


def run_broker_hash(args: argparse.Namespace) -> int:
    from central.auth.passwords import mosquitto_hash

    password = getpass.getpass("broker password: ") if sys.stdin.isatty() else sys.stdin.readline()
    password = password.rstrip("\r\n")
    if not password:
        raise ConfigError("no password on stdin")
    _say(mosquitto_hash(password))
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
