"""`python -m demo.embedded_broker -c mosquitto.conf`: run until SIGTERM or SIGINT; SIGHUP reloads the
password and ACL files. Logs JSON lines on stderr. Exit status 0 after a stop, 1 when it cannot start."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from common.errors import ConfigError
from common.log import setup_logging
from demo.embedded_broker.config import BrokerConfig, load_config
from demo.embedded_broker.server import Server

log = logging.getLogger("demo.embedded_broker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.embedded_broker",
        description="the demo's MQTT 5 / 3.1.1 broker when Mosquitto is missing (docs/demo.md)",
    )
    parser.add_argument("-c", "--config-file", type=Path, required=True, help="mosquitto.conf to read")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connection at debug level")
    args = parser.parse_args(argv)
    setup_logging("debug" if args.verbose else "info")
    try:
        config = load_config(args.config_file)
    except ConfigError as err:
        print(f"embedded broker: error: {err}", file=sys.stderr)
        return 1
    return asyncio.run(serve(config))


async def serve(config: BrokerConfig) -> int:
    server = Server(config)
    try:
        await server.start()
    except (ConfigError, OSError) as err:
        print(f"embedded broker: error: {err}", file=sys.stderr)
        await server.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    if config.pid_file:
        config.pid_file.write_text(f"{os.getpid()}\n")
    log.info("broker_started", extra={"pid": os.getpid()})
    try:
        await stop.wait()
    finally:
        await server.stop()
        if config.pid_file:
            config.pid_file.unlink(missing_ok=True)
    log.info("broker_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
