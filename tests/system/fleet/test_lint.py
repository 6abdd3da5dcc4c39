"""The Ansible tree is clean: ansible-lint (production profile, offline) reports nothing, site.yml
passes --syntax-check with the example inventory, and the example vault opens with its documented
example password."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import ansible_rig

EXAMPLE = ansible_rig.ANSIBLE_DIR / "inventories/example"
EXAMPLE_PASSWORD = EXAMPLE / "EXAMPLE-ONLY-vault-password.txt"


def test_ansible_lint_production_profile_reports_nothing(tmp_path: Path) -> None:
    run = ansible_rig.run(
        [str(ansible_rig.BIN / "ansible-lint"), "--offline", "--profile", "production", "--format", "pep8"],
        tmp_path,
        # the linter reads the vault files too
        env={"ANSIBLE_VAULT_PASSWORD_FILE": str(EXAMPLE_PASSWORD)},
    )
    assert run.returncode == 0, run.tail()
    assert "0 failure(s), 0 warning(s)" in run.output, run.tail()
    assert "Decryption failed" not in run.output


def test_ansible_site_syntax_check_passes_with_example_inventory(tmp_path: Path) -> None:
    for playbook in ("site.yml", "firewall.yml"):
        run = ansible_rig.run(
            [
                str(ansible_rig.BIN / "ansible-playbook"),
                "--syntax-check",
                "-i",
                str(EXAMPLE / "hosts.yml"),
                playbook,
            ],
            tmp_path,
        )
        assert run.returncode == 0, run.tail()


def test_ansible_example_inventory_opens_with_example_vault_password(tmp_path: Path) -> None:
    run = ansible_rig.run(
        [
            str(ansible_rig.BIN / "ansible-inventory"),
            "-i",
            str(EXAMPLE / "hosts.yml"),
            "--vault-password-file",
            str(EXAMPLE_PASSWORD),
            "--list",
        ],
        tmp_path,
    )
    assert run.returncode == 0, run.tail()
    inventory = json.loads(run.output[run.output.index("{") :])
    hostvars = inventory["_meta"]["hostvars"]
    edges = [h for group in ("site_branch_007", "site_branch_012") for h in inventory[group]["hosts"]]
    assert {(hostvars[h]["edge_site"], hostvars[h]["edge_id"]) for h in edges} == {
        ("branch-007", "door-1"),
        ("branch-007", "lobby-1"),
        ("branch-012", "door-1"),
    }
    assert hostvars["edge-007-door"]["vault_edge_api_key"].startswith("fg_")
    assert "vault_central_database_url" in hostvars["central-1"]
