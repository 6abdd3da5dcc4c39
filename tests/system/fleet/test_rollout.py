"""Rolling Facegate out to edges with ansible/site.yml: a device file with an error stops the rollout
before any host changes; a release that never gets ready is rolled back on the first host and the
hosts after it are not touched. The "hosts" are folders on this machine (tests/support/ansible_rig.py)."""

from __future__ import annotations

import pytest

from tests.support import ansible_rig
from tests.system.fleet.conftest import FleetMaker

DAEMON_WRITES = ("var/lib/facegate/gallery", "var/lib/facegate/outbox", "var/lib/facegate/seq", "var/log")


@pytest.fixture
def fleet(make_fleet: FleetMaker) -> ansible_rig.Fleet:
    """Two edges of one site."""
    return make_fleet("rollout", ("edge1", "edge2"))


def test_ansible_rollout_config_error_stops_before_any_host_changes(fleet: ansible_rig.Fleet) -> None:
    edge1, edge2 = fleet.hosts
    for host in fleet.hosts:  # what is on the boxes already
        host.device_file.parent.mkdir(parents=True)
        host.device_file.write_text("# the device file the box runs with\n")
    before = {h.name: ansible_rig.tree(h.root) for h in fleet.hosts}
    broken = {"edge_device_overrides": {"tracker": {"min_frames": 0}, "outbox": {"when_full": "drop_all"}}}
    inventory = fleet.inventory(edge2=broken)

    run = ansible_rig.playbook(fleet.tmp, inventory, extra={"facegate_version": ansible_rig.GOOD_VERSION})

    assert run.returncode != 0, run.tail()
    assert "the device file is refused, nothing on this host was changed" in run.output, run.tail()
    assert "tracker.min_frames" in run.output and "outbox.when_full" in run.output, run.tail()
    # The preflight checks every edge before the first one changes: edge1's file is fine, but the
    # rollout stopped before it too.
    assert {h.name: ansible_rig.tree(h.root) for h in fleet.hosts} == before
    assert "Install the release" not in run.output
    assert edge1.release() == edge2.release() == ""


def test_ansible_rollout_failed_health_gate_rolls_back_and_stops(fleet: ansible_rig.Fleet) -> None:
    edge1, edge2 = fleet.hosts
    inventory = fleet.inventory()
    first = ansible_rig.playbook(
        fleet.tmp,
        inventory,
        extra={"facegate_version": ansible_rig.GOOD_VERSION, "rollout_edge_batches": [2]},
    )
    assert first.returncode == 0, first.tail()
    assert [h.release() for h in fleet.hosts] == [ansible_rig.GOOD_VERSION] * 2
    assert [h.running_release() for h in fleet.hosts] == [ansible_rig.GOOD_VERSION] * 2
    assert [h.readyz() for h in fleet.hosts] == [200, 200]
    device_before = edge1.device_file.read_text()
    pid_before = edge1.pid()
    # What Ansible manages (the running daemon keeps writing its state and log under var/)
    edge2_before = ansible_rig.tree(edge2.root, skip=DAEMON_WRITES)
    edge2_pid = edge2.pid()

    # The canary release starts but never passes /readyz; the rollout also changes the device file.
    second = ansible_rig.playbook(
        fleet.tmp,
        inventory,
        extra={
            "facegate_version": ansible_rig.CANARY_VERSION,
            "rollout_edge_batches": [1, 1],
            "edge_gate_timeout_s": 15,
            "edge_device_overrides": {"heartbeat_s": 7.0},
        },
    )

    assert second.returncode != 0, second.tail()
    assert f"release {ansible_rig.CANARY_VERSION} failed" in second.output, second.tail()
    assert f"rolled back to {edge1.root}/opt/facegate/releases/{ansible_rig.GOOD_VERSION}" in second.output
    # edge1 runs the previous release again, ready, with its previous device file
    assert edge1.release() == ansible_rig.GOOD_VERSION
    assert edge1.running_release() == ansible_rig.GOOD_VERSION
    assert edge1.pid() != pid_before
    assert edge1.readyz() == 200
    assert edge1.device_file.read_text() == device_before
    assert (edge1.root / "opt/facegate/releases" / ansible_rig.CANARY_VERSION).is_dir()
    # edge2, in the next batch, was not touched: same files, same process
    assert ansible_rig.tree(edge2.root, skip=DAEMON_WRITES) == edge2_before
    assert edge2.pid() == edge2_pid and edge2.running_release() == ansible_rig.GOOD_VERSION
    recap = second.recap()
    assert recap["edge1"]["failed"] == 1 and recap["edge1"]["rescued"] == 1
    assert "edge2" not in recap or recap["edge2"]["changed"] == 0
    print(f"first rollout {first.seconds:.1f} s, failed rollout with rollback {second.seconds:.1f} s")
