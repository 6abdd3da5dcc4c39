"""The broker's generated files without a broker: what they say, their modes, and the queue arithmetic.
(tests/integration/central/test_broker.py runs a real Mosquitto on them.)"""

from __future__ import annotations

import stat
from pathlib import Path

import anyio
import psycopg
import pytest

from central.auth.passwords import mosquitto_hash, verify_mosquitto
from central.broker.acl import CentralAccount, render_acl_file, render_password_file
from central.broker.conf import BrokerConf, QueueSizing, render_conf
from central.broker.files import Written, regenerate, write_broker_files
from central.broker.registry import build_registry
from central.broker.settings import central_accounts_from_env
from central.db import migrate, open_async_pool
from common.errors import ConfigError
from devtools.services import PostgresService
from tests.support.paths import REPO

CENTRAL = CentralAccount("central", mosquitto_hash("central-secret"))
EDGE_HASH = mosquitto_hash("edge-secret")
REGISTRY = build_registry(
    [("south", "gate", EDGE_HASH), ("north", "door", EDGE_HASH), ("north", "legacy", None)],
    [("north", "staff"), ("south", "vip"), ("north", "all"), ("south", "all")],
)


def directives(text: str) -> dict[str, list[str]]:
    """mosquitto.conf as {option: [values in order]} (comments and blank lines skipped)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found.setdefault(key, []).append(value)
    return found


def test_broker_conf_defaults_have_tls_persistence_inflight_and_queue_limits() -> None:
    conf = directives(render_conf(BrokerConf(Path("/etc/mosquitto/facegate"))))
    assert conf["listener"] == ["8883"]
    assert conf["tls_version"] == ["tlsv1.2"]
    assert conf["allow_anonymous"] == ["false"]
    assert conf["persistence"] == ["true"]
    assert int(conf["max_inflight_messages"][0]) >= 500
    assert conf["max_queued_messages"] == ["36000"]  # 0.5/s x 10 edges x 2 h x 3600
    assert conf["max_queued_bytes"] == [str(36000 * 16384)]
    assert conf["password_file"] == ["/etc/mosquitto/facegate/passwords"]
    assert conf["acl_file"] == ["/etc/mosquitto/facegate/acl"]
    assert conf["persistent_client_expiration"] == ["168h"]


def test_broker_conf_inflight_window_follows_the_batch_size() -> None:
    conf = directives(render_conf(BrokerConf(Path("/x"), batch_size=2000)))
    assert int(conf["max_inflight_messages"][0]) >= 2000


def test_broker_conf_queue_limits_follow_the_outage_arithmetic() -> None:
    sizing = QueueSizing(events_per_s_per_edge=2, edges=50, outage_hours=0.5, event_bytes=1000)
    conf = directives(render_conf(BrokerConf(Path("/x"), queue=sizing)))
    assert conf["max_queued_messages"] == [str(2 * 50 * 1800)]
    assert conf["max_queued_bytes"] == [str(2 * 50 * 1800 * 1000)]


def test_broker_conf_local_listener_is_off_by_default_and_loopback_when_on() -> None:
    assert len(directives(render_conf(BrokerConf(Path("/x"))))["listener"]) == 1
    on = directives(render_conf(BrokerConf(Path("/x"), local_port=1883)))
    assert on["listener"] == ["8883", "1883 127.0.0.1"]


def test_broker_conf_sessions_expiring_before_the_outage_ends_are_refused() -> None:
    with pytest.raises(ValueError, match="expire"):
        BrokerConf(Path("/x"), queue=QueueSizing(outage_hours=48), client_expiration_hours=24)


def test_broker_password_file_has_central_and_each_edge_with_a_hash() -> None:
    lines = render_password_file(REGISTRY, [CENTRAL]).splitlines()
    users = [line.split(":", 1)[0] for line in lines]
    assert users == ["central", "north/door", "south/gate"]  # north/legacy has no hash: no login
    assert verify_mosquitto("edge-secret", lines[1].split(":", 1)[1])


def test_broker_acl_gives_an_edge_its_own_topics_and_its_sites_galleries_only() -> None:
    acl = render_acl_file(REGISTRY, [CENTRAL])
    door = acl.split("user north/door\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert door == [
        "topic write facegate/v1/north/door/events",
        "topic write facegate/v1/north/door/status",
        "topic write facegate/v1/north/door/heartbeat",
        "topic read facegate/v1/north/door/receipts",
        "topic read facegate/v1/north/door/commands",
        "topic read facegate/v1/galleries/all/manifest",
        "topic read facegate/v1/galleries/all/changes",
        "topic read facegate/v1/galleries/staff/manifest",
        "topic read facegate/v1/galleries/staff/changes",
    ]
    assert "user central\ntopic readwrite facegate/#" in acl
    assert "legacy" not in acl


def test_broker_files_are_written_with_the_password_file_private(tmp_path: Path) -> None:
    written = write_broker_files(tmp_path / "out", REGISTRY, [CENTRAL], BrokerConf(tmp_path / "out"))
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written.paths}
    assert modes == {"passwords": 0o600, "acl": 0o644, "mosquitto.conf": 0o644}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["acl", "mosquitto.conf", "passwords"]
    assert "central-secret" not in (tmp_path / "out" / "passwords").read_text()


def test_broker_central_account_comes_from_the_mqtt_url_without_storing_the_password() -> None:
    (account,) = central_accounts_from_env({"FACEGATE_MQTT_URL": "mqtts://ingest:s%3Acret@broker:8883"})
    assert account.username == "ingest"
    assert verify_mosquitto("s:cret", account.password_hash)


def test_broker_central_account_without_hash_or_url_names_the_variables() -> None:
    with pytest.raises(ConfigError, match="FACEGATE_BROKER_CENTRAL_HASH"):
        central_accounts_from_env({})


def test_broker_central_username_with_a_slash_is_refused() -> None:
    env = {"FACEGATE_BROKER_CENTRAL_USER": "north/door", "FACEGATE_BROKER_CENTRAL_HASH": EDGE_HASH}
    with pytest.raises(ConfigError, match="central's broker username"):
        central_accounts_from_env(env)


def test_broker_example_conf_in_deploy_is_what_the_defaults_generate() -> None:
    example = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert example == render_conf(BrokerConf(Path("/etc/mosquitto/facegate")))


def test_broker_regenerate_rewrites_auth_files_from_the_database(
    postgres_db: PostgresService, tmp_path: Path
) -> None:
    migrate(postgres_db.dsn)
    with psycopg.connect(postgres_db.dsn) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES ('north', '')")
        conn.execute(
            "INSERT INTO edges (site_id, id, broker_password_hash) VALUES ('north', 'door', %s)", (EDGE_HASH,)
        )

    async def run() -> Written:
        pool = await open_async_pool(postgres_db.dsn, 1, 1)
        try:
            return await regenerate(pool, tmp_path, [CENTRAL], None)
        finally:
            await pool.close()

    written = anyio.run(run)
    assert [p.name for p in written.paths] == ["passwords", "acl"]
    assert written.edges == 1
    assert "user north/door" in (tmp_path / "acl").read_text()


def test_broker_regenerating_an_unchanged_registry_changes_no_file(tmp_path: Path) -> None:
    env = {"FACEGATE_MQTT_URL": "mqtts://central:secret@broker:8883"}
    first = write_broker_files(tmp_path, REGISTRY, central_accounts_from_env(env), BrokerConf(tmp_path))
    previous = (tmp_path / "passwords").read_text()
    again = write_broker_files(
        tmp_path, REGISTRY, central_accounts_from_env(env, previous), BrokerConf(tmp_path)
    )
    assert (first.changed, again.changed) == (True, False)


def test_broker_central_account_prefers_the_mqtt_username_and_password_settings() -> None:
    env = {
        "FACEGATE_MQTT_URL": "mqtts://url-user:url-secret@broker:8883",
        "FACEGATE_MQTT_USERNAME": "ingest",
        "FACEGATE_MQTT_PASSWORD": "setting-secret",
    }
    (account,) = central_accounts_from_env(env)
    assert account.username == "ingest"
    assert verify_mosquitto("setting-secret", account.password_hash)


def test_broker_conf_binds_client_ids_to_logins() -> None:
    """Without it an edge logs in with its own password and central's client id and throws central off."""
    text = render_conf(BrokerConf(Path("/etc/mosquitto/facegate"), local_port=1883))
    assert directives(text)["use_username_as_clientid"] == ["true", "true"]
    # a listener option: under each `listener` line (before the first it opens a default listener)
    blocks = text.split("\nlistener ")
    assert "use_username_as_clientid" not in blocks[0]
    assert all("use_username_as_clientid true" in block for block in blocks[1:])


def test_broker_central_gets_one_login_per_replica_sharing_the_password() -> None:
    env = {"FACEGATE_MQTT_PASSWORD": "shared-secret", "FACEGATE_BROKER_CENTRAL_USER": "central-1, central-2"}
    accounts = central_accounts_from_env(env)
    assert [a.username for a in accounts] == ["central-1", "central-2"]
    assert all(verify_mosquitto("shared-secret", a.password_hash) for a in accounts)
    text = render_acl_file(REGISTRY, accounts)
    assert "user central-1\ntopic readwrite facegate/#" in text
    assert "user central-2\ntopic readwrite facegate/#" in text
    passwords = render_password_file(REGISTRY, accounts)
    assert [line.split(":")[0] for line in passwords.splitlines()][:2] == ["central-1", "central-2"]


def test_broker_central_logins_from_a_hash_default_to_central() -> None:
    (default,) = central_accounts_from_env({"FACEGATE_BROKER_CENTRAL_HASH": EDGE_HASH})
    assert default.username == "central"
    env = {"FACEGATE_BROKER_CENTRAL_HASH": EDGE_HASH, "FACEGATE_BROKER_CENTRAL_USER": "a,b,c"}
    assert [a.username for a in central_accounts_from_env(env)] == ["a", "b", "c"]


def test_broker_central_logins_must_include_the_mqtt_login() -> None:
    env = {
        "FACEGATE_MQTT_USERNAME": "central-3",
        "FACEGATE_MQTT_PASSWORD": "pw",
        "FACEGATE_BROKER_CENTRAL_USER": "central-1,central-2",
    }
    with pytest.raises(ConfigError, match="list every replica's login"):
        central_accounts_from_env(env)
