"""A private Mosquitto that needs a password (anonymous logins refused), whose password file a test can
change and have reloaded (SIGHUP), as an operator fixing the broker's users would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.services import MqttBroker
from devtools.services.ports import free_port


@dataclass(frozen=True, slots=True)
class SecuredBroker:
    endpoint: MqttBroker
    passwords: Path
    process: subprocess.Popen[bytes]

    def set_user(self, name: str, password: str) -> None:
        subprocess.run(["mosquitto_passwd", "-b", str(self.passwords), name, password], check=True)

    def reload(self) -> None:
        """Mosquitto reads its password file again on SIGHUP."""
        self.process.send_signal(signal.SIGHUP)


@contextmanager
def secured_broker(tmp_path: Path, users: dict[str, str]) -> Iterator[SecuredBroker]:
    """The broker, with `users` (name -> password; at least one) in its password file."""
    passwords = tmp_path / "passwd"
    first, *others = users.items()
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), *first], check=True)
    port = free_port()
    conf = tmp_path / "secured.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous false", f"password_file {passwords}"]
    conf.write_text("\n".join([*lines, *(["user root"] if os.geteuid() == 0 else [])]) + "\n")
    process = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    broker = SecuredBroker(MqttBroker(host="127.0.0.1", port=port), passwords, process)
    for name, password in others:
        broker.set_user(name, password)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the secured broker did not start"
                time.sleep(0.05)
        yield broker
    finally:
        process.kill()
        process.wait()
