"""The edge role's molecule scenario (ansible/roles/edge/molecule/default): converge into a temporary
root, the daemon it starts gets ready against a real broker, verify, a second converge changes nothing."""

from __future__ import annotations

import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ansible_rig
from tests.system.fleet.conftest import FleetMaker


@pytest.fixture
def fleet(make_fleet: FleetMaker) -> ansible_rig.Fleet:
    return make_fleet("molecule", ("edge-molecule",))


def _unit_installed() -> bool:
    return Path("/etc/systemd/system/facegate-edge.service").exists()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _table_loaded() -> bool:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    if not Path(nft).exists():
        return False
    done = subprocess.run([nft, "list", "table", "inet", "facegate"], capture_output=True, check=False)
    return done.returncode == 0


def test_ansible_molecule_edge_converges_gets_ready_and_is_idempotent(fleet: ansible_rig.Fleet) -> None:
    host = fleet.hosts[0]
    variables = {**fleet.group_vars(), **fleet.host_vars(host), "facegate_version": ansible_rig.GOOD_VERSION}
    variables.pop("ansible_connection")
    vars_file = fleet.tmp / "molecule-vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    machine_before = (_unit_installed(), _user_exists("facegate"), _table_loaded())

    run = ansible_rig.run(
        [str(ansible_rig.BIN / "molecule"), "test", "--scenario-name", "default"],
        fleet.tmp,
        cwd=ansible_rig.ANSIBLE_DIR / "roles/edge",
        env={
            "FACEGATE_MOLECULE_VARS": str(vars_file),
            "MOLECULE_EPHEMERAL_DIRECTORY": str(fleet.tmp / "molecule"),
        },
    )

    assert run.returncode == 0, run.tail()
    assert "default > idempotence] Executed: Successful" in run.output, run.tail()
    # The scenario converged, verified (ready), converged again with no change and cleaned up.
    assert host.release() == ansible_rig.GOOD_VERSION
    assert (host.root / "etc/systemd/system/facegate-edge.service").is_file()
    assert (host.root / "etc/facegate/nftables/roles/edge.nft").is_file()
    assert host.running_release() == ""  # cleanup stopped the daemon
    # ... and the machine itself was not changed: no unit installed, no user, no firewall table.
    assert (_unit_installed(), _user_exists("facegate"), _table_loaded()) == machine_before
    print(f"molecule test took {run.seconds:.1f} s")
