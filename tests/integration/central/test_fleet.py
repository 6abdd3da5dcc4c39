"""Sites and edges over the real app: scopes, site restriction, edge credentials, audit."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql

from central.auth import mosquitto_hash, password_file_line, verify_mosquitto
from devtools.services import MosquittoFactory, MqttBroker
from tests.support.central_app import Central


def make_site(central: Central, site: str, name: str = "") -> dict[str, Any]:
    response = central.client.post("/api/v1/sites", json={"id": site, "name": name}, headers=central.admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def register(central: Central, site: str, edge: str) -> dict[str, Any]:
    response = central.client.post(f"/api/v1/sites/{site}/edges", json={"id": edge}, headers=central.admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_hash(central: Central, site: str, edge: str) -> str:
    with central.db() as conn:
        row = conn.execute(
            "SELECT broker_password_hash FROM edges WHERE site_id = %s AND id = %s", (site, edge)
        ).fetchone()
    assert row is not None
    return str(row[0])


def database_text(conn: psycopg.Connection[Any]) -> str:
    """Every row of every table in the public schema, as text."""
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    ).fetchall()
    parts = []
    for (table,) in tables:
        query = sql.SQL("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {} t").format(
            sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        parts.append(row[0] if row else "")
    return "\n".join(parts)


def test_sites_create_read_and_list(central: Central) -> None:
    created = make_site(central, "branch-1", "Branch one")
    assert created["id"] == "branch-1"
    assert created["edge_count"] == 0
    got = central.client.get("/api/v1/sites/branch-1", headers=central.admin)
    assert got.json()["name"] == "Branch one"
    listed = central.client.get("/api/v1/sites", headers=central.admin).json()
    assert [s["id"] for s in listed] == ["branch-1"]


def test_sites_duplicate_id_is_409(central: Central) -> None:
    make_site(central, "branch-1")
    again = central.client.post("/api/v1/sites", json={"id": "branch-1"}, headers=central.admin)
    assert again.status_code == 409
    assert again.json()["code"] == "site_exists"


def test_sites_reserved_and_malformed_ids_are_refused(central: Central) -> None:
    reserved = central.client.post("/api/v1/sites", json={"id": "galleries"}, headers=central.admin)
    assert reserved.status_code == 422
    assert "reserved" in reserved.json()["message"]
    bad = central.client.post("/api/v1/sites", json={"id": "a/b"}, headers=central.admin)
    assert bad.status_code == 400


def test_sites_viewer_reads_but_cannot_create(central: Central) -> None:
    make_site(central, "branch-1")
    viewer = central.as_(central.key("viewer"))
    assert central.client.get("/api/v1/sites/branch-1", headers=viewer).status_code == 200
    refused = central.client.post("/api/v1/sites", json={"id": "x"}, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"


def test_sites_restricted_key_sees_only_its_sites(central: Central) -> None:
    make_site(central, "a")
    make_site(central, "b")
    key = central.as_(central.key("viewer", ["a"]))
    assert [s["id"] for s in central.client.get("/api/v1/sites", headers=key).json()] == ["a"]
    other = central.client.get("/api/v1/sites/b", headers=key)
    assert other.status_code == 403
    assert other.json()["code"] == "site_not_allowed"


def test_sites_rename_is_audited(central: Central) -> None:
    make_site(central, "a", "old")
    renamed = central.client.patch("/api/v1/sites/a", json={"name": "new"}, headers=central.admin)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "new"
    with central.db() as conn:
        actions = [
            r[0] for r in conn.execute("SELECT action FROM audit_log WHERE target_id = 'a' ORDER BY id")
        ]
    assert actions == ["site.create", "site.update"]


def test_sites_delete_is_refused_while_edges_exist(central: Central) -> None:
    make_site(central, "a")
    register(central, "a", "e1")
    refused = central.client.delete("/api/v1/sites/a", headers=central.admin)
    assert refused.status_code == 409
    assert refused.json()["code"] == "site_in_use"
    assert refused.json()["details"] == {"edges": ["e1"]}
    assert central.client.delete("/api/v1/sites/a/edges/e1", headers=central.admin).status_code == 200
    assert central.client.delete("/api/v1/sites/a", headers=central.admin).status_code == 200
    assert central.client.get("/api/v1/sites/a", headers=central.admin).status_code == 404


def test_sites_delete_is_refused_while_a_key_is_restricted_to_it(central: Central) -> None:
    make_site(central, "a")
    central.key("viewer", ["a"])
    refused = central.client.delete("/api/v1/sites/a", headers=central.admin)
    assert refused.status_code == 409
    assert list(refused.json()["details"]) == ["api_keys"]


def test_edges_registration_returns_working_credentials_once(central: Central) -> None:
    make_site(central, "a")
    body = register(central, "a", "e1")
    creds = body["credentials"]
    assert creds["broker_username"] == "a/e1"
    assert creds["topic_prefix"] == "facegate/v1/a/e1/"
    assert verify_mosquitto(creds["broker_password"], stored_hash(central, "a", "e1"))
    assert not verify_mosquitto("wrong", stored_hash(central, "a", "e1"))
    # The API credential authenticates as an edge: it reaches the guard's edge check (403), not 401.
    refused = central.client.get("/api/v1/sites", headers=central.as_(creds["api_key"]))
    assert refused.status_code == 403
    assert refused.json()["code"] == "edge_only"
    read = central.client.get("/api/v1/sites/a/edges/e1", headers=central.admin)
    assert read.status_code == 200
    assert "credentials" not in read.json()
    assert creds["broker_password"] not in read.text
    assert creds["api_key"].split("_", 2)[2] not in read.text


def test_edges_secrets_are_stored_only_as_hashes(central: Central) -> None:
    make_site(central, "a")
    creds = register(central, "a", "e1")["credentials"]
    secret = creds["api_key"].split("_", 2)[2]
    with central.db() as conn:
        text = database_text(conn)
    assert creds["broker_password"] not in text
    assert secret not in text
    assert creds["api_key"].split("_")[1] in text  # the lookup prefix is stored in clear


def test_edges_registering_twice_is_409(central: Central) -> None:
    make_site(central, "a")
    register(central, "a", "e1")
    again = central.client.post("/api/v1/sites/a/edges", json={"id": "e1"}, headers=central.admin)
    assert again.status_code == 409
    assert again.json()["code"] == "edge_exists"


def test_edges_registering_on_an_unknown_site_is_404(central: Central) -> None:
    response = central.client.post("/api/v1/sites/nowhere/edges", json={"id": "e1"}, headers=central.admin)
    assert response.status_code == 404


def test_edges_rotation_replaces_both_credentials(central: Central) -> None:
    make_site(central, "a")
    old = register(central, "a", "e1")["credentials"]
    rotated = central.client.post("/api/v1/sites/a/edges/e1/credentials", headers=central.admin)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["broker_username"] == "a/e1"
    stored = stored_hash(central, "a", "e1")
    assert verify_mosquitto(new["broker_password"], stored)
    assert not verify_mosquitto(old["broker_password"], stored)
    assert central.client.get("/api/v1/sites", headers=central.as_(old["api_key"])).status_code == 401
    assert central.client.get("/api/v1/sites", headers=central.as_(new["api_key"])).status_code == 403


def test_edges_deletion_revokes_the_credential(central: Central) -> None:
    make_site(central, "a")
    creds = register(central, "a", "e1")["credentials"]
    assert central.client.delete("/api/v1/sites/a/edges/e1", headers=central.admin).status_code == 200
    assert central.client.get("/api/v1/sites", headers=central.as_(creds["api_key"])).status_code == 401
    assert central.client.get("/api/v1/sites/a/edges/e1", headers=central.admin).status_code == 404


def test_edges_changes_are_audited(central: Central) -> None:
    make_site(central, "a")
    register(central, "a", "e1")
    central.client.post("/api/v1/sites/a/edges/e1/credentials", headers=central.admin)
    central.client.delete("/api/v1/sites/a/edges/e1", headers=central.admin)
    with central.db() as conn:
        rows = conn.execute("SELECT action, target_id FROM audit_log WHERE target_type = 'edge' ORDER BY id")
        entries = [tuple(r) for r in rows]
    assert entries == [
        ("edge.register", "a/e1"),
        ("edge.rotate_credentials", "a/e1"),
        ("edge.delete", "a/e1"),
    ]


def test_edges_writes_need_an_admin_key_of_the_site(central: Central) -> None:
    make_site(central, "a")
    make_site(central, "b")
    operator = central.as_(central.key("operator"))
    assert central.client.post("/api/v1/sites/a/edges", json={"id": "e"}, headers=operator).status_code == 403
    admin_b = central.as_(central.key("admin", ["b"]))
    refused = central.client.post("/api/v1/sites/a/edges", json={"id": "e"}, headers=admin_b)
    assert refused.status_code == 403
    assert central.client.post("/api/v1/sites/b/edges", json={"id": "e"}, headers=admin_b).status_code == 201


def test_edges_list_shows_status_and_filters_by_site(central: Central) -> None:
    make_site(central, "a")
    make_site(central, "b")
    for site, edge in (("a", "e1"), ("a", "e2"), ("b", "e1")):
        register(central, site, edge)
    with central.db() as conn:
        conn.execute(
            "UPDATE edges SET status = 'online', last_seen = now(), software_version = '1.2.3',"
            " gallery_versions = '{\"staff\": 4}' WHERE site_id = 'a' AND id = 'e2'"
        )
    listed = central.client.get("/api/v1/edges", params={"site": "a"}, headers=central.admin).json()
    assert [(e["site"], e["id"], e["status"]) for e in listed["items"]] == [
        ("a", "e1", "offline"),
        ("a", "e2", "online"),
    ]
    assert listed["items"][1]["gallery_versions"] == {"staff": 4}
    assert listed["items"][1]["software_version"] == "1.2.3"
    online = central.client.get("/api/v1/edges", params={"status": "online"}, headers=central.admin)
    assert [e["id"] for e in online.json()["items"]] == ["e2"]


def test_edges_list_restricted_key_sees_only_its_sites(central: Central) -> None:
    make_site(central, "a")
    make_site(central, "b")
    register(central, "a", "e1")
    register(central, "b", "e1")
    key = central.as_(central.key("viewer", ["b"]))
    listed = central.client.get("/api/v1/edges", headers=key).json()
    assert [(e["site"], e["id"]) for e in listed["items"]] == [("b", "e1")]
    assert central.client.get("/api/v1/edges", params={"site": "a"}, headers=key).status_code == 403


def test_edges_list_pages_with_a_cursor(central: Central) -> None:
    make_site(central, "a")
    for edge in ("e1", "e2", "e3"):
        register(central, "a", edge)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = central.client.get("/api/v1/edges", params=params, headers=central.admin).json()
        seen.extend(e["id"] for e in page["items"])
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert seen == ["e1", "e2", "e3"]
    bad = central.client.get("/api/v1/edges", params={"cursor": "!!"}, headers=central.admin)
    assert bad.status_code == 422
    assert bad.json()["code"] == "bad_cursor"


def connected(broker: MqttBroker, username: str, password: str) -> mqtt.Client:
    """A client logged in as `username` (asserts the CONNACK is a success)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fg-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(username, password)
    ready = threading.Event()
    codes: list[Any] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        codes.append(rc)
        ready.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    assert ready.wait(5), "no CONNACK within 5 s"
    assert not codes[0].is_failure, codes[0]
    return client


def test_edges_broker_login_and_pattern_acl_work_on_a_real_broker(
    central: Central, mosquitto_factory: MosquittoFactory, service_backend: str, tmp_path: Path
) -> None:
    if service_backend == "docker":
        pytest.skip("the password file is written on the host; a broker container cannot read it")
    make_site(central, "a")
    creds = register(central, "a", "e1")["credentials"]
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    lines = [password_file_line(creds["broker_username"], stored_hash(central, "a", "e1"))]
    passwd.write_text("\n".join([*lines, password_file_line("central", mosquitto_hash("pw"))]) + "\n")
    acl.write_text("user central\ntopic read facegate/#\n\npattern write facegate/v1/%u/#\n")
    broker = mosquitto_factory(persistence=False, extra_config=[f"password_file {passwd}", f"acl_file {acl}"])
    received: list[str] = []
    reader = connected(broker.endpoint, "central", "pw")
    reader.on_message = lambda _c, _u, message: received.append(message.topic)
    reader.subscribe("facegate/#", qos=1)
    edge = connected(broker.endpoint, creds["broker_username"], creds["broker_password"])
    try:
        time.sleep(0.3)  # let the subscription settle
        for topic in ("facegate/v1/a/e2/events", "facegate/v1/a/e1/events"):
            edge.publish(topic, b"{}", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        for client in (edge, reader):
            client.disconnect()
            client.loop_stop()
    assert received == [creds["topic_prefix"] + "events"]
