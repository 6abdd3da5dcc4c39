"""The host firewall the roles render (ansible/firewall.yml; the same tasks run inside site.yml):
`nft -c` accepts it, and each role opens only its listed ports, internal services to the internal
network only. The rules are rendered under temporary roots and never loaded into the kernel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support import ansible_rig
from tests.support.ansible_rig import Opening

INTERNAL = frozenset({"10.20.0.0/16", "fd20::/48"})
ADMIN = frozenset({"10.99.0.0/24"})
SSH = Opening("tcp", 22, ADMIN)
EDGE_HEALTH = 9200
# host: (groups, the ports it must open and nothing else)
HOSTS: dict[str, tuple[list[str], set[Opening]]] = {
    "fw-edge": (["edges"], {SSH, Opening("tcp", EDGE_HEALTH, INTERNAL)}),
    "fw-central": (
        ["central"],
        {SSH, Opening("tcp", 8080, INTERNAL), Opening("tcp", 5432, INTERNAL), Opening("tcp", 6379, INTERNAL)},
    ),
    "fw-broker": (["brokers"], {SSH, Opening("tcp", 8883, INTERNAL)}),
    "fw-both": (
        ["central", "brokers"],
        {
            SSH,
            Opening("tcp", 8080, INTERNAL),
            Opening("tcp", 5432, INTERNAL),
            Opening("tcp", 6379, INTERNAL),
            Opening("tcp", 8883, INTERNAL),
        },
    ),
}


@dataclass(frozen=True)
class Rendered:
    roots: dict[str, Path]
    run: ansible_rig.Run
    nft_missing: str


def _inventory(tmp: Path, roots: dict[str, Path], nft_missing: str) -> Path:
    groups: dict[str, dict[str, object]] = {"edges": {}, "central": {}, "brokers": {}}
    for name, (member_of, _) in HOSTS.items():
        for group in member_of:
            groups[group][name] = {"facegate_root": str(roots[name])}
    document = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "facegate_manage_system": False,
                "facegate_internal_cidrs": sorted(INTERNAL),
                "facegate_admin_cidrs": sorted(ADMIN),
                "firewall_check": not nft_missing,
                "edge_health_port": EDGE_HEALTH,
                "central_local_postgres": True,
                "central_local_redis": True,
            },
            "children": {group: {"hosts": hosts} for group, hosts in groups.items()},
        }
    }
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    tmp = tmp_path_factory.mktemp("firewall")
    roots = {name: tmp / "hosts" / name for name in HOSTS}
    for root in roots.values():
        root.mkdir(parents=True)
    nft_missing = ansible_rig.nft_usable(tmp)
    run = ansible_rig.playbook(tmp, _inventory(tmp, roots, nft_missing), "firewall.yml")
    assert run.returncode == 0, run.tail()
    return Rendered(roots, run, nft_missing)


def _rule_files(root: Path) -> list[Path]:
    folder = root / "etc/facegate/nftables"
    return [folder / "main.nft", *sorted((folder / "roles").glob("*.nft"))]


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_ansible_firewall_role_opens_only_its_listed_ports(rendered: Rendered, host: str) -> None:
    files = _rule_files(rendered.roots[host])
    main = files[0].read_text()
    assert "type filter hook input priority filter; policy drop;" in main
    assert ansible_rig.openings(files) == HOSTS[host][1]


def test_ansible_firewall_rules_pass_nft_check(rendered: Rendered) -> None:
    if rendered.nft_missing:
        pytest.skip(rendered.nft_missing)
    assert "Check the rules with nft -c" in rendered.run.output
    nft = shutil.which("nft") or "/usr/sbin/nft"
    for root in rendered.roots.values():
        main = root / "etc/facegate/nftables/main.nft"
        done = subprocess.run([nft, "-c", "-f", str(main)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        # a rule nft refuses is caught: the check is real
        broken = main.parent / "roles" / "zz-broken.nft"
        broken.write_text("add rule inet facegate input tcp dport 8883 acept\n")
        try:
            refused = subprocess.run(
                [nft, "-c", "-f", str(main)], capture_output=True, text=True, check=False
            )
        finally:
            broken.unlink()
        assert refused.returncode != 0 and "acept" in refused.stderr
    # Checked, never loaded
    listed = subprocess.run([nft, "list", "table", "inet", "facegate"], capture_output=True, check=False)
    assert listed.returncode != 0
