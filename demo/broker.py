"""The demo's broker: Mosquitto on the files `facegate central broker-config` writes from central's edge
registry (TLS listener on 127.0.0.1 with the demo's own CA, password file, ACL, persistence).

Mosquitto comes from the machine (scripts/demo.sh installs Debian's package with apt-get when it is
missing and apt can). There is no embedded fallback: the system needs an MQTT 5 broker (shared
subscriptions for ingest, reason codes, session expiry), and no broker installable from PyPI offers
that today (amqtt speaks MQTT 3.1.1). Without Mosquitto the demo stops and says how to install it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common.errors import FacegateError
from demo.processes import FACEGATE, Child
from demo.tls import CertificateFiles


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FacegateError(
            "Mosquitto is not installed. Install it (Debian/Ubuntu: sudo apt-get install mosquitto; "
            "it need not run as a service: the demo starts its own on a free port), then run the demo again."
        )
    return found


@dataclass
class DemoBroker:
    folder: Path  # state/broker: the generated files; state/broker-data: its persistence
    port: int
    certs: CertificateFiles
    central_username: str
    central_password: str
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def write_files(self, dsn: str) -> None:
        """Run `facegate central broker-config` against the registry; SIGHUP the broker if it runs."""
        data = self.folder.parent / "broker-data"
        data.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            FACEGATE_MQTT_USERNAME=self.central_username,
            FACEGATE_MQTT_PASSWORD=self.central_password,
        )
        result = subprocess.run(
            [FACEGATE, "central", "broker-config", "--out", str(self.folder), "--database-url", dsn,
             "--listener-port", str(self.port), "--bind-address", "127.0.0.1",
             "--cafile", str(self.certs.cafile), "--certfile", str(self.certs.certfile),
             "--keyfile", str(self.certs.keyfile), "--persistence-dir", f"{data}/",
             "--autosave-interval", "10"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise FacegateError(f"facegate central broker-config failed: {result.stderr.strip()[-800:]}")
        conf = (self.folder / "mosquitto.conf").read_text()
        # Root: stay root to read the demo's files (a user's state folder; the broker drops to `mosquitto`
        # otherwise). Logs to the demo's log file.
        extra = ["log_dest stderr", "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:
            extra.append("user root")
        (self.folder / "mosquitto-demo.conf").write_text(conf + "\n" + "\n".join(extra) + "\n")
        if self.child is not None and self.child.alive() and self.child.proc is not None:
            self.child.proc.send_signal(signal.SIGHUP)

    def start(self, state: Path) -> None:
        self.child = Child(
            "mosquitto", [mosquitto_binary(), "-c", str(self.folder / "mosquitto-demo.conf")], state
        )
        self.child.start()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
