"""The fleet-rollout test rig: the Ansible tree run against "hosts" that are folders on this machine.

Every host is an inventory host with `ansible_connection: local` and its own `facegate_root` (a
temporary folder), so the roles converge there and never touch the machine itself
(`facegate_manage_system: false`: no users, no installed units, no loaded firewall rules; the edge
daemon runs as a plain process under start-stop-daemon). A release is a wheel built here from the
working tree, installed by the role with pip into its own virtual environment; the environment sees
the test environment's installed dependencies through a .pth file, so an install takes seconds.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO

ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
GOOD_VERSION = "0.1.0"
CANARY_VERSION = "0.2.0"

# A release that starts, connects and serves /healthz, but whose /readyz never passes: the daemon's
# readiness gets one more check that is always false.
CANARY_MODULE = '''"""Canary release for the rollout tests: /readyz always answers 503."""
import sys

from common.cli import main as real_main


def main():
    if sys.argv[1:3] == ["edge", "run"]:
        import edge.ops.health

        original = edge.ops.health.HealthServer.__init__

        def init(self, host, port, registry, readiness):
            original(self, host, port, registry, lambda: {**readiness(), "canary_release": False})

        edge.ops.health.HealthServer.__init__ = init
    return real_main()
'''


def ansible_env(tmp: Path) -> dict[str, str]:
    """Environment for ansible-playbook, ansible-lint and molecule: this interpreter's tools first,
    the repository's ansible.cfg, Ansible's scratch folders under `tmp`, no colours."""
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-remote"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
        PY_COLORS="0",
    )
    return env


# --- Releases -------------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def packages() -> list[str]:
    """The top-level packages pyproject.toml ships (tool.setuptools.packages.find.include)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns: list[str] = project["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(
        p.name
        for p in REPO.iterdir()
        if (p / "__init__.py").is_file() and any(fnmatch.fnmatch(p.name, pattern) for pattern in patterns)
    )


def build_wheel(dest: Path, version: str, *, canary: bool = False) -> Path:
    """A wheel of the working tree's packages (every file in them, a superset of what setuptools'
    package data ships). `canary`: the `facegate` command is the canary release's."""
    members: list[tuple[str, bytes]] = []
    for package in packages():
        for path in sorted((REPO / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                members.append((path.relative_to(REPO).as_posix(), path.read_bytes()))
    entry = "common.cli:main"
    if canary:
        members.append(("facegate_canary.py", CANARY_MODULE.encode()))
        entry = "facegate_canary:main"
    info = f"facegate-{version}.dist-info"
    members += [
        (f"{info}/METADATA", f"Metadata-Version: 2.1\nName: facegate\nVersion: {version}\n".encode()),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: tests.support.ansible_rig\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        ),
        (f"{info}/entry_points.txt", entry_points(entry).encode()),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members)
    record += f"{info}/RECORD,,\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"facegate-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in [*members, (f"{info}/RECORD", record.encode())]:
            archive.writestr(name, data)
    return wheel


def entry_points(console: str) -> str:
    """entry_points.txt: the `facegate` script (`console`) and every entry point group of pyproject.toml
    (the command registry the `facegate` command reads)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = ["[console_scripts]", f"facegate = {console}", ""]
    for group, points in project.get("entry-points", {}).items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in points.items()), ""]
    return "\n".join(lines)


def build_wheelhouse(folder: Path) -> None:
    """The good release (GOOD_VERSION) and the canary (CANARY_VERSION) in `folder`."""
    build_wheel(folder, GOOD_VERSION)
    build_wheel(folder, CANARY_VERSION, canary=True)


# --- Hosts and inventories ------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeHost:
    """One edge "host": a folder standing for its root file system, and its health port."""

    name: str
    root: Path
    health_port: int
    camera: Path

    @property
    def current(self) -> Path:
        return self.root / "opt/facegate/current"

    @property
    def pidfile(self) -> Path:
        return self.root / "run/facegate/facegate-edge.pid"

    @property
    def device_file(self) -> Path:
        return self.root / "etc/facegate/device.yaml"

    @property
    def log(self) -> Path:
        return self.root / "var/log/facegate/facegate-edge.log"

    def release(self) -> str:
        """The release `current` points at ("" when there is none)."""
        return self.current.readlink().name if self.current.is_symlink() else ""

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running_release(self) -> str:
        """The release folder the daemon process runs from ("" when none runs)."""
        pid = self.pid()
        if pid is None or not Path(f"/proc/{pid}").exists():
            return ""
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        match = re.search(r"/releases/([^/]+)/bin/", " ".join(a.decode() for a in args))
        return match.group(1) if match else ""

    def readyz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return 0

    def stop(self) -> None:
        """Stop the daemon the role started (test teardown)."""
        stop_process(self.pidfile)


def stop_process(pidfile: Path) -> None:
    """Stop a process a role started in process mode (start-stop-daemon with this pid file)."""
    if pidfile.exists():
        subprocess.run(
            [
                *("start-stop-daemon", "--stop", "--oknodo", "--pidfile", str(pidfile)),
                *("--remove-pidfile", "--retry", "TERM/20/KILL/5"),
            ],
            check=False,
            capture_output=True,
        )


def site_packages() -> str:
    """This environment's site-packages, which releases under test import their dependencies from."""
    return sysconfig.get_paths()["purelib"]


def nft_usable(tmp: Path) -> str:
    """Why `nft -c` cannot run here ("" when it can): it needs the nft binary and CAP_NET_ADMIN."""
    nft = shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)
    if nft is None:
        return "nft (nftables) is not installed"
    probe = tmp / "probe.nft"
    probe.write_text("table inet facegate_probe\ndelete table inet facegate_probe\n")
    done = subprocess.run([nft, "-c", "-f", str(probe)], capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else f"nft -c does not work here: {done.stderr.strip()}"


@dataclass
class Fleet:
    """Edge hosts on this machine and the variables every test inventory shares."""

    tmp: Path
    wheels: Path
    model_dir: Path
    broker: tuple[str, int]
    site: str
    hosts: list[EdgeHost] = field(default_factory=list)

    def add(self, name: str, camera: Path, health_port: int) -> EdgeHost:
        host = EdgeHost(name, self.tmp / "hosts" / name, health_port, camera)
        host.root.mkdir(parents=True)
        self.hosts.append(host)
        return host

    @classmethod
    def with_camera(
        cls, tmp: Path, wheels: Path, model_dir: Path, broker: tuple[str, int], photo: Path, site_prefix: str
    ) -> Fleet:
        """A fleet whose edges read a folder holding `photo`, at a unique site (the shared broker may serve
        other tests); add its hosts with `add(name, fleet.camera, port)`."""
        camera = tmp / "camera"
        camera.mkdir()
        shutil.copy(photo, camera)
        return cls(tmp, wheels, model_dir, broker, f"{site_prefix}-{uuid.uuid4().hex[:8]}")

    @property
    def camera(self) -> Path:
        return self.tmp / "camera"

    def group_vars(self) -> dict[str, Any]:
        nft_missing = nft_usable(self.tmp)
        return {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "facegate_manage_system": False,
            "facegate_python": sys.executable,
            "facegate_venv_args": ["--without-pip"],
            "facegate_venv_extra_site_dirs": [site_packages()],
            "facegate_wheelhouse": str(self.wheels),
            "facegate_pip_args": [
                *("--no-index", "--find-links", "{{ facegate_wheelhouse_dir }}"),
                *("--no-deps", "--ignore-installed"),
            ],
            "facegate_pip_packages": ["facegate=={{ facegate_version }}"],
            "facegate_models_from": str(self.model_dir),
            "facegate_controller_command": str(BIN / "facegate"),
            "facegate_gate_interval_s": 1,
            "facegate_internal_cidrs": ["10.20.0.0/16", "fd20::/48"],
            "firewall_check": not nft_missing,
            "edge_broker_url": f"mqtt://{self.broker[0]}:{self.broker[1]}",
            "edge_broker_username": "",
            "edge_central_url": "http://127.0.0.1:9",
            "edge_api_key": "test-edge-secret",
            "edge_site": self.site,
            "edge_galleries": ["staff"],
            "edge_health_host": "127.0.0.1",
            "edge_device_overrides": {"heartbeat_s": 5.0, "pipeline": {"runtime": {"intra_op_threads": 1}}},
        }

    def host_vars(self, host: EdgeHost) -> dict[str, Any]:
        return {
            "facegate_root": str(host.root),
            "edge_id": host.name,
            "edge_health_port": host.health_port,
            "edge_cameras": [{"id": "door", "source": str(host.camera), "kind": "folder", "fps_cap": 0.5}],
        }

    def inventory(self, name: str = "inventory.yml", **host_overrides: Mapping[str, Any]) -> Path:
        """An inventory of group `edges` with every host; `host_overrides[host name]` adds host vars."""
        hosts = {h.name: {**self.host_vars(h), **host_overrides.get(h.name, {})} for h in self.hosts}
        document = {"all": {"children": {"edges": {"hosts": hosts, "vars": self.group_vars()}}}}
        path = self.tmp / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def stop_all(self) -> None:
        for host in self.hosts:
            host.stop()


# --- Running Ansible ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A finished ansible-playbook (or molecule) run."""

    args: Sequence[str]
    returncode: int
    output: str
    seconds: float

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host."""
        counters: dict[str, dict[str, int]] = {}
        for line in self.output.splitlines():
            match = re.match(r"^(\S+)\s+:\s+(ok=\d+.*)$", line)
            if match:
                counters[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
        return counters


def run(
    args: Sequence[str],
    tmp: Path,
    *,
    cwd: Path = ANSIBLE_DIR,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> Run:
    """Run an Ansible tool with ansible_env(tmp) (plus `env`), output and errors together."""
    started = time.monotonic()
    done = subprocess.run(
        list(args),
        cwd=cwd,
        env={**ansible_env(tmp), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(args, done.returncode, done.stdout, time.monotonic() - started)


def playbook(
    tmp: Path,
    inventory: Path,
    playbook_path: str = "site.yml",
    *,
    extra: Mapping[str, Any] | None = None,
    options: Iterable[str] = (),
) -> Run:
    """ansible-playbook from the ansible/ folder (its ansible.cfg) with extra vars as JSON."""
    args = [str(BIN / "ansible-playbook"), "-i", str(inventory), playbook_path, *options]
    if extra:
        args += ["--extra-vars", yaml.safe_dump(dict(extra), default_flow_style=True, width=10_000).strip()]
    return run(args, tmp)


# --- Trees ----------------------------------------------------------------------------------------


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, int, int, str]]:
    """Every path under `root` (but those starting with a `skip` prefix): (kind, size, mtime in ns,
    link target), to see what a run changed."""
    entries: dict[str, tuple[str, int, int, str]] = {}
    for path in sorted(root.rglob("*")):
        if str(path.relative_to(root)).startswith(skip):
            continue
        info = path.lstat()
        if path.is_symlink():
            entries[str(path.relative_to(root))] = ("link", 0, info.st_mtime_ns, str(path.readlink()))
        elif path.is_dir():
            entries[str(path.relative_to(root))] = ("dir", 0, info.st_mtime_ns, "")
        else:
            entries[str(path.relative_to(root))] = ("file", info.st_size, info.st_mtime_ns, "")
    return entries


# --- Firewall rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opening:
    """One accepted port: protocol, port, and the sources it is open to (None: anywhere)."""

    proto: str
    port: int
    sources: frozenset[str] | None


ACCEPT_RULE = re.compile(
    r"^(?:add rule inet \S+ input )?(?:(?P<family>ip6?) saddr \{ (?P<cidrs>[^}]+) \} )?"
    r"(?P<proto>tcp|udp) dport (?P<port>\d+) accept(?: comment \"[^\"]*\")?$"
)
# Accepting rules that open no port: established traffic, loopback, ICMP.
BASE_ACCEPTS = (
    "ct state established,related accept",
    'iif "lo" accept',
    'meta l4proto ipv6-icmp accept comment "IPv6 needs ICMPv6 (neighbour discovery, path MTU)"',
    "meta l4proto icmp icmp type { echo-request, destination-unreachable, time-exceeded } accept",
)


def openings(files: Iterable[Path]) -> set[Opening]:
    """The ports the rule files open. Fails on any accepting rule it does not understand, so a rule
    that opens more than a listed port cannot slip through."""
    found: dict[tuple[str, int], set[str] | None] = {}
    for path in files:
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if "accept" not in line.split() or line in BASE_ACCEPTS:
                continue
            match = ACCEPT_RULE.match(line)
            if match is None:
                raise AssertionError(f"{path.name}: accepting rule not understood: {line}")
            key = (match["proto"], int(match["port"]))
            if match["cidrs"] is None:
                found[key] = None
            elif key not in found or found[key] is not None:
                previous = found.get(key) or set()
                found[key] = previous | {c.strip() for c in match["cidrs"].split(",")}
    return {Opening(p, port, None if s is None else frozenset(s)) for (p, port), s in found.items()}
