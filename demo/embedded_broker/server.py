"""The listeners (TLS or plain TCP), the password and ACL files, and their reload on SIGHUP.

A reload re-reads both files, as Mosquitto 2 does: new logins work at once, connected clients keep their
connection but follow the new ACL, and a client whose user is gone from the password file is
disconnected (not authorized).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from common.errors import ConfigError
from demo.embedded_broker.acl import Acl
from demo.embedded_broker.auth import Passwords
from demo.embedded_broker.codec import NOT_AUTHORIZED
from demo.embedded_broker.config import BrokerConfig, Listener
from demo.embedded_broker.connection import CLOSE_GRACE_S, Connection
from demo.embedded_broker.router import Router

log = logging.getLogger("demo.embedded_broker")
SERVER_SHUTTING_DOWN = 0x8B
TLS_HANDSHAKE_TIMEOUT_S = 10.0


class Server:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.passwords = Passwords()
        self.router = Router(config.limits, Acl())
        self.stopping = False
        self._servers: list[asyncio.Server] = []
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Read the files and open every listener; ConfigError (or OSError for a busy port) when not."""
        self.load_files()
        for listener in self.config.listeners:
            context = tls_context(listener)
            server = await asyncio.start_server(
                self._accept,
                listener.address or None,
                listener.port,
                ssl=context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if context else None,
            )
            self._servers.append(server)
            where = f"{listener.address or '*'}:{listener.port}"
            log.info("listening", extra={"listener": where, "tls": context is not None})

    def load_files(self) -> None:
        config = self.config
        passwords = Passwords.load(config.password_file) if config.password_file else Passwords()
        acl = Acl.load(config.acl_file) if config.acl_file else Acl()
        self.passwords, self.router.acl = passwords, acl

    def reload(self) -> None:
        """SIGHUP: re-read the password and ACL files (the old ones stay when the new cannot be read)."""
        try:
            self.load_files()
        except ConfigError as err:
            log.error("reload_failed", extra={"error": str(err)})
            return
        gone = [
            c for c in self._connections
            if self.config.password_file and c.session and c.session.username not in self.passwords
        ]  # fmt: skip
        for connection in gone:
            connection.close(NOT_AUTHORIZED)
        log.info("reloaded", extra={"users": len(self.passwords.hashes), "disconnected": len(gone)})

    async def stop(self) -> None:
        self.stopping = True
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.close(SERVER_SHUTTING_DOWN)
        if self._tasks:  # let them end (asyncio.run would cancel them)
            await asyncio.wait(self._tasks, timeout=CLOSE_GRACE_S + 1)
        for server in self._servers:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection, task = Connection(self, reader, writer), asyncio.current_task()
        self._connections.add(connection)
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self._tasks.discard(task)


def tls_context(listener: Listener) -> ssl.SSLContext | None:
    """The listener's TLS: its certificate and key, TLS 1.2 (or `tls_version`) and later; no client
    certificates (as the generated configuration: clients log in with a password)."""
    if not listener.tls:
        return None
    if not (listener.certfile and listener.keyfile):
        raise ConfigError(f"listener {listener.port}: TLS needs both certfile and keyfile")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}
    context.minimum_version = versions[listener.tls_version]
    try:
        context.load_cert_chain(listener.certfile, listener.keyfile)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(
            f"listener {listener.port}: cannot load certfile {listener.certfile} and keyfile "
            f"{listener.keyfile}: {err}"
        ) from err
    return context
