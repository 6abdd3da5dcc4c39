"""The central and broker roles converged together into one temporary root (a host in both groups),
against a real PostgreSQL: the broker role generates Mosquitto's password, ACL and configuration
files with `facegate central broker-config` and installs the TLS files; the central role runs the
migrations once, starts central from the release and passes its /ready gate; both render and verify
their units and firewall rules; a second run changes nothing.

Mosquitto itself is not started here: run as root it drops to its own user, which cannot read a
temporary root (the system tests run it on files broker-config wrote)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from central.auth.passwords import mosquitto_hash
from devtools.services import PostgresService
from devtools.services.ports import free_port
from tests.support import ansible_rig
from tests.support.ansible_rig import Opening
from tests.support.central_app import SECRET

PEM = "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"
INTERNAL = frozenset({"10.20.0.0/16", "fd20::/48"})


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "services-1"
    root.mkdir()
    yield root
    ansible_rig.stop_process(root / "run/facegate/facegate-central.pid")


def _ready(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_ansible_central_and_broker_converge_migrate_once_and_are_idempotent(
    tmp_path: Path, root: Path, wheels: Path, model_dir: Path, postgres_db: PostgresService
) -> None:
    port = free_port()
    fleet = ansible_rig.Fleet(tmp_path, wheels, model_dir, ("127.0.0.1", 1), "unused")
    shared = {k: v for k, v in fleet.group_vars().items() if not k.startswith("edge_")}
    host = {
        **shared,
        "ansible_python_interpreter": sys.executable,
        "facegate_root": str(root),
        "central_bind": "127.0.0.1",
        "central_port": port,
        "central_database_url": postgres_db.dsn,
        "central_secret_key": SECRET,
        "central_environment": {"FACEGATE_DB_POOL_MIN": "1", "FACEGATE_ENROLL_WORKERS": "1"},
        "central_gate_timeout_s": 90,
        "broker_database_url": postgres_db.dsn,
        "broker_central_hash": mosquitto_hash("central-broker-password"),
        "broker_tls_ca": PEM,
        "broker_tls_cert": PEM,
        "broker_tls_key": "-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----\n",
        # Mosquitto is rendered and checked, not started (see the module's docstring)
        "broker_service_manager": "none",
    }
    groups = {"central": {"hosts": {"services-1": host}}, "brokers": {"hosts": {"services-1": None}}}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": groups}}))
    # site.yml migrates first (the broker's registry needs the tables), then the broker, then central
    extra = {"facegate_version": ansible_rig.GOOD_VERSION}
    options = ["--tags", "central,broker"]

    first = ansible_rig.playbook(tmp_path, inventory, extra=extra, options=options)

    assert first.returncode == 0, first.tail()
    # central: migrated once, running from the release, ready
    assert _ready(port) == 200
    with psycopg.connect(postgres_db.dsn) as conn:
        applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert applied is not None and applied[0] > 0
    env_file = root / "etc/facegate/central.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert 'FACEGATE_MIGRATE_ON_START="false"' in env_file.read_text()
    # the broker's generated files
    config = root / "etc/mosquitto/facegate"
    # one broker login per central host, named after it (central_mqtt_username, broker_central_users)
    assert (config / "passwords").read_text().startswith("services-1:$7$")
    assert (config / "passwords").stat().st_mode & 0o777 == 0o600
    assert "user services-1" in (config / "acl").read_text()
    assert "use_username_as_clientid true" in (config / "mosquitto.conf").read_text()
    conf = (config / "mosquitto.conf").read_text()
    assert f"password_file {config}/passwords" in conf and "listener 8883" in conf
    assert f"cafile {root}/etc/mosquitto/certs/ca.crt" in conf
    assert (root / "etc/mosquitto/certs/server.key").stat().st_mode & 0o777 == 0o640
    # units rendered and verified by systemd-analyze, never installed on this machine
    assert {p.name for p in (root / "etc/systemd/system").iterdir()} == {
        "facegate-central.service",
        "facegate-mosquitto.service",
        "facegate-broker-config.service",
        "facegate-broker-config.timer",
    }
    assert not Path("/etc/systemd/system/facegate-central.service").exists()
    # firewall: the API and the broker, internal only
    rules = root / "etc/facegate/nftables"
    assert ansible_rig.openings([rules / "main.nft", *sorted((rules / "roles").glob("*.nft"))]) == {
        Opening("tcp", 22, INTERNAL),
        Opening("tcp", port, INTERNAL),
        Opening("tcp", 8883, INTERNAL),
    }

    again = ansible_rig.playbook(tmp_path, inventory, extra=extra, options=options)

    assert again.returncode == 0, again.tail()
    assert again.recap()["services-1"]["changed"] == 0, again.tail()
    assert _ready(port) == 200
    print(f"central and broker: first converge {first.seconds:.1f} s, second {again.seconds:.1f} s")
