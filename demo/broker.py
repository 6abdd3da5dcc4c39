"""The demo's broker on the files `facegate central broker-config` writes from central's edge registry
(TLS listener on 127.0.0.1 with the demo's own CA, password file, ACL, persistence): Mosquitto, or the
embedded broker (`demo/embedded_broker/`) where Mosquitto is missing.

Mosquitto comes from the machine (scripts/demo.sh installs Debian's package with apt-get when it is
missing and apt can). No MQTT 5 broker is installable from PyPI (amqtt speaks MQTT 3.1.1 only), so the
fallback is a small broker of our own in pure Python; what it lacks is in docs/demo.md.
FACEGATE_DEMO_BROKER chooses: `auto` (default: Mosquitto when installed, else the embedded one),
`mosquitto` (stop with a message when it is missing) or `embedded`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.errors import FacegateError
from demo.processes import FACEGATE, Child, stop_leftover
from demo.tls import CertificateFiles

CHOICE_ENV = "FACEGATE_DEMO_BROKER"
CHOICES = ("auto", "mosquitto", "embedded")
CHILD_NAMES = {"mosquitto": "mosquitto", "embedded": "embedded-broker"}  # its log and pid file


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def mosquitto_binary() -> str:
    found = find_mosquitto()
    if found is None:
        raise FacegateError(
            f"Mosquitto is not installed and {CHOICE_ENV}=mosquitto asks for it. Install it (Debian/Ubuntu: "
            "sudo apt-get install mosquitto; it need not run as a service: the demo starts its own on a free "
            f"port), or unset {CHOICE_ENV} to fall back to the embedded broker, then run the demo again."
        )
    return found


def broker_kind(env: Mapping[str, str] = os.environ) -> str:
    """`mosquitto` or `embedded`, as FACEGATE_DEMO_BROKER asks (auto: Mosquitto when installed)."""
    choice = env.get(CHOICE_ENV, "").strip().lower() or "auto"
    if choice not in CHOICES:
        raise FacegateError(f"{CHOICE_ENV}={choice!r}: use one of {', '.join(CHOICES)}")
    if choice == "auto":
        return "mosquitto" if find_mosquitto() else "embedded"
    return choice


@dataclass
class DemoBroker:
    folder: Path  # state/broker: the generated files; state/broker-data: its persistence
    port: int
    certs: CertificateFiles
    central_username: str
    central_password: str
    child: Child | None = None
    kind: str = ""  # mosquitto or embedded, chosen by start()

    @property
    def name(self) -> str:
        """What runs, for the demo's output."""
        return "the embedded broker" if self.kind == "embedded" else "Mosquitto"

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
        self.kind = broker_kind()
        conf = str(self.folder / "mosquitto-demo.conf")
        if self.kind == "mosquitto":
            command = [mosquitto_binary(), "-c", conf]
        else:
            command = [sys.executable, "-m", "demo.embedded_broker", "-c", conf]
            forced = os.environ.get(CHOICE_ENV, "").strip().lower() == "embedded"
            why = f"{CHOICE_ENV}=embedded" if forced else "Mosquitto is not installed"
            print(f"== broker: the embedded MQTT broker ({why}; what it lacks: docs/demo.md)", flush=True)
        for other in CHILD_NAMES.values():  # a killed earlier run may have used the other broker
            stop_leftover(state / "pids" / f"{other}.pid")
        self.child = Child(CHILD_NAMES[self.kind], command, state)
        self.child.start()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
