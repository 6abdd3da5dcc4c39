"""Registering an edge with central from the edge role (edge_credentials_from: api), against a real
central over HTTP: the first run creates the site and the edge and puts the credentials central
returns on the box; the next run only looks the edge up; a box that lost them stops, or gets new ones
when rotation is allowed."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

from central.auth.repository import create_key_sync
from central.storage import FileSettings
from devtools.services import PostgresService
from devtools.services.central import serve
from tests.support import ansible_rig
from tests.support.central_app import SECRET, make_settings

# Only the credentials step of the edge role, on a box whose /etc/facegate exists.
PLAYBOOK = """
- name: Edge credentials
  hosts: edges
  gather_facts: false
  tasks:
    - name: Create the configuration folder
      ansible.builtin.file:
        path: "{{ facegate_root }}/etc/facegate"
        state: directory
        mode: "0755"
    - name: Install the credentials
      ansible.builtin.include_role:
        name: edge
        tasks_from: credentials.yml
"""


@dataclass(frozen=True)
class Central:
    url: str
    admin_key: str


@pytest.fixture
def central(postgres_db: PostgresService, model_dir: Path, tmp_path: Path) -> Iterator[Central]:
    settings = make_settings(postgres_db, FileSettings(tmp_path / "objects", SECRET), model_dir)
    with serve(settings) as url:
        with psycopg.connect(postgres_db.dsn) as conn:
            admin = create_key_sync(conn, "rollout", "admin").display
        yield Central(url, admin)


def _get(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _credentials(root: Path) -> dict[str, str]:
    text = (root / "etc/facegate/edge-credentials.env").read_text()
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: value.strip('"') for name, value in pairs}


def test_ansible_registration_registers_once_and_keeps_the_box_credentials(
    central: Central, tmp_path: Path
) -> None:
    root = tmp_path / "box"
    root.mkdir()
    inventory = tmp_path / "inventory.yml"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "facegate_root": str(root),
        "facegate_manage_system": False,
        "edge_site": "branch-reg",
        "edge_id": "door-1",
        "edge_credentials_from": "api",
        "edge_create_site": True,
        "edge_central_url": central.url,
        "edge_central_admin_key": central.admin_key,
        "edge_broker_refresh_hosts": [],
    }
    inventory.write_text(yaml.safe_dump({"all": {"children": {"edges": {"hosts": {"box": host}}}}}))
    playbook = tmp_path / "credentials.yml"
    playbook.write_text(PLAYBOOK)

    first = ansible_rig.playbook(tmp_path, inventory, str(playbook))
    assert first.returncode == 0, first.tail()
    issued = _credentials(root)
    edge_url = f"{central.url}/api/v1/sites/branch-reg/edges/door-1"
    assert _get(edge_url, central.admin_key) == 200
    # the key on the box is the edge's own credential: it reads model manifests, not people
    assert _get(f"{central.url}/api/v1/models", issued["FACEGATE_CENTRAL_SECRET"]) == 200
    assert len(issued["FACEGATE_BROKER_PASSWORD"]) == 43
    assert first.recap()["box"]["changed"] == 4  # the folder, the site, the edge, the credentials file

    again = ansible_rig.playbook(tmp_path, inventory, str(playbook))
    assert again.returncode == 0, again.tail()
    assert again.recap()["box"]["changed"] == 0
    assert _credentials(root) == issued

    (root / "etc/facegate/edge-credentials.env").unlink()  # a re-imaged box
    lost = ansible_rig.playbook(tmp_path, inventory, str(playbook))
    assert lost.returncode != 0
    assert "holds no credentials" in lost.output and "edge_rotate_lost_credentials" in lost.output

    rotated = ansible_rig.playbook(
        tmp_path, inventory, str(playbook), extra={"edge_rotate_lost_credentials": True}
    )
    assert rotated.returncode == 0, rotated.tail()
    renewed = _credentials(root)
    assert renewed["FACEGATE_CENTRAL_SECRET"] != issued["FACEGATE_CENTRAL_SECRET"]
    assert _get(f"{central.url}/api/v1/models", renewed["FACEGATE_CENTRAL_SECRET"]) == 200
    assert _get(f"{central.url}/api/v1/models", issued["FACEGATE_CENTRAL_SECRET"]) == 401
    json.dumps(renewed)  # plain strings
