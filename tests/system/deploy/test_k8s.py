"""deploy/k8s: every manifest validated (kubernetes-validate, strict, pinned Kubernetes versions), the
kustomization complete (and built by kustomize where kubectl is installed), and the rules the manifests
must keep: two central replicas with probes, non-root containers on read-only root file systems, secrets
only through secretKeyRef (no Secret objects, no literal values), a backup CronJob that runs
`facegate central backup` one at a time, an Ingress whose body size and timeouts match central, the broker
on its generated files, and every referenced Secret documented in docs/deployment.md.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from central.settings import CentralSettings
from central.storage import S3Settings
from tests.support.paths import REPO
from tests.system.deploy.test_nginx import upload_limits

ROOT = REPO
K8S = ROOT / "deploy" / "k8s"
DOCS = ROOT / "docs" / "deployment.md"
# The oldest minor the manifests promise to work on, and a current one.
KUBERNETES_VERSIONS = ("1.31.0", "1.35.0")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN|DATABASE_URL|REDIS_URL")
WORKLOADS = {"Deployment", "StatefulSet", "CronJob", "Job", "DaemonSet"}


def manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


@functools.cache
def documents() -> list[dict[str, Any]]:
    """Every object of the manifests (cached: treat as read-only)."""
    return [doc for path in manifest_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents() if doc["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    template = (
        workload["spec"]["jobTemplate"]["spec"]["template"]
        if workload["kind"] == "CronJob"
        else workload["spec"]["template"]
    )
    spec: dict[str, Any] = template["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    spec = workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]
    labels: dict[str, str] = spec["template"]["metadata"]["labels"]
    return labels


def containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) for every container of every workload."""
    for doc in documents():
        if doc["kind"] in WORKLOADS:
            spec = pod_spec(doc)
            for container in spec["containers"] + spec.get("initContainers", []):
                yield doc["metadata"]["name"], spec, container


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate is not installed: pip install -e '.[test]'")
    command = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_k8s_every_manifest_validates_strictly(version: str) -> None:
    result = validate(manifest_files(), version)
    # --quiet prints only failures and warnings; a kind without a schema is only a warning: refuse it too.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_k8s_validation_rejects_a_broken_manifest(tmp_path: Path) -> None:
    broken = tmp_path / "central.yaml"
    broken.write_text((K8S / "central.yaml").read_text().replace("replicas: 2", 'replicas: "two"'))
    result = validate([broken], KUBERNETES_VERSIONS[-1])
    assert result.returncode != 0
    assert "replicas" in result.stdout


def test_k8s_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files()]
    assert kustomization["namespace"] == one("Namespace", "facegate")["metadata"]["name"]


def test_k8s_kustomize_build_puts_everything_in_the_namespace_and_validates(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its built-in kustomize renders deploy/k8s)")
    built = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    objects = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert len(objects) == len(documents())
    assert all(
        doc["metadata"].get("namespace") == "facegate" for doc in objects if doc["kind"] != "Namespace"
    )
    (tmp_path / "built.yaml").write_text(built.stdout)
    result = validate([tmp_path / "built.yaml"], KUBERNETES_VERSIONS[-1])
    assert result.returncode == 0, result.stdout


def test_k8s_central_runs_two_replicas_with_startup_liveness_and_readiness_probes() -> None:
    central = one("StatefulSet", "facegate-central")
    assert central["spec"]["replicas"] == 2
    (container,) = pod_spec(central)["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000, "metrics": 9100}
    assert one("ConfigMap", "facegate-central")["data"]["FACEGATE_METRICS_PORT"] == "9100"
    assert central["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    assert container["args"][-4:] == ["--host", "0.0.0.0", "--port", "8000"]
    probes = {
        kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["startupProbe"] == {"path": "/health", "port": "http"}
    assert probes["livenessProbe"] == {"path": "/health", "port": "http"}
    assert probes["readinessProbe"] == {"path": "/ready", "port": "http"}


def test_k8s_central_replicas_log_in_to_the_broker_under_their_stable_pod_names() -> None:
    """The broker binds client ids to logins: each replica's login (its client id and persistent session)
    is its pod name, stable in a StatefulSet; the shared ConfigMap names no login; the docs' broker-config
    command lists every replica's."""
    central = one("StatefulSet", "facegate-central")
    env = {var["name"]: var for var in pod_spec(central)["containers"][0]["env"]}
    assert env["FACEGATE_MQTT_USERNAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "FACEGATE_MQTT_CLIENT_ID" not in env
    assert "FACEGATE_MQTT_USERNAME" not in one("ConfigMap", "facegate-central")["data"]
    name, replicas = central["metadata"]["name"], central["spec"]["replicas"]
    logins = ",".join(f"{name}-{i}" for i in range(replicas))
    assert f"FACEGATE_BROKER_CENTRAL_USER={logins}" in DOCS.read_text()


def test_k8s_every_workload_has_probes_or_is_a_job() -> None:
    for name, _, container in containers():
        workload = next(doc for doc in documents() if doc["metadata"]["name"] == name)
        if workload["kind"] in {"CronJob", "Job"} or container["name"] == "reload":
            continue
        assert {"livenessProbe", "readinessProbe"} <= container.keys(), (name, container["name"])


def test_k8s_every_container_runs_as_non_root_on_a_read_only_root_with_limits() -> None:
    checked = 0
    for name, spec, container in containers():
        where = f"{name}/{container['name']}"
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] > 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        own = container["securityContext"]
        assert own["allowPrivilegeEscalation"] is False, where
        assert own["readOnlyRootFilesystem"] is True, where
        assert own["capabilities"] == {"drop": ["ALL"]}, where
        assert own.get("runAsUser", pod["runAsUser"]) > 0, where
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), where
        assert "memory" in container["resources"]["limits"], where
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), where
        checked += 1
    assert checked >= 4


def test_k8s_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = one("Namespace", "facegate")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_k8s_secrets_come_only_from_secret_key_refs() -> None:
    assert of_kind("Secret") == [], "secret values never live in deploy/k8s"
    for name, _, container in containers():
        for var in container.get("env", []):
            if SECRET_NAME.search(var["name"]):
                assert "value" not in var, (name, var["name"])
                assert "secretKeyRef" in var["valueFrom"], (name, var["name"])
            value = str(var.get("value", ""))
            assert not re.search(r"://[^/\s]*:[^/\s]*@", value), (name, var["name"])
    for config_map in of_kind("ConfigMap"):
        for key, value in config_map["data"].items():
            assert not SECRET_NAME.search(key), key
            assert not re.search(r"://[^/\s]*:[^/\s]*@", value), key


def referenced_secrets() -> set[tuple[str, str]]:
    """(Secret name, key) for every secretKeyRef and secret volume item ('*' for a whole Secret)."""
    found: set[tuple[str, str]] = set()
    for _, spec, container in containers():
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                found.add((ref["name"], ref["key"]))
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if secret:
                items = secret.get("items") or [{"key": "*"}]
                found |= {(secret["secretName"], item["key"]) for item in items}
    for ingress in of_kind("Ingress"):
        found |= {(tls["secretName"], "*") for tls in ingress["spec"]["tls"]}
    return found


def test_k8s_every_referenced_secret_and_key_is_documented() -> None:
    docs = DOCS.read_text()
    for name, key in sorted(referenced_secrets()):
        assert f"`{name}`" in docs, f"Secret {name} is not described in docs/deployment.md"
        if key != "*":
            assert f"`{key}`" in docs, f"key {key} of Secret {name} is not described in docs/deployment.md"


def test_k8s_backup_cronjob_runs_central_backup_one_at_a_time_onto_a_volume() -> None:
    (cronjob,) = of_kind("CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod_spec(cronjob)
    (container,) = spec["containers"]
    argv = [*container["command"], *container["args"]]
    assert argv[:3] == ["facegate", "central", "backup"]
    out = argv[argv.index("--out") + 1]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    claim = volumes[mounts[out]]["persistentVolumeClaim"]["claimName"]
    assert one("PersistentVolumeClaim", claim)
    env = {var["name"] for var in container["env"]}
    assert {"FACEGATE_DATABASE_URL", "FACEGATE_S3_SECRET_KEY", "FACEGATE_SECRET_KEY"} <= env


def test_k8s_services_and_pdb_select_their_pods() -> None:
    workloads = [doc for doc in documents() if doc["kind"] in {"Deployment", "StatefulSet"}]
    for service in of_kind("Service"):
        selector = service["spec"]["selector"].items()
        matched = [doc for doc in workloads if selector <= pod_labels(doc).items()]
        assert len(matched) == 1, service["metadata"]["name"]
        named_ports = {
            port["name"] for c in pod_spec(matched[0])["containers"] for port in c.get("ports", [])
        }
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= named_ports
    pdb = one("PodDisruptionBudget", "facegate-central")
    assert pdb["spec"]["minAvailable"] == 1
    central = one("StatefulSet", "facegate-central")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(central).items()
    assert central["spec"]["serviceName"] in {service["metadata"]["name"] for service in of_kind("Service")}


def size_bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)", size.lower())
    assert match is not None, f"not an nginx size: {size}"
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def body_limit(ingress: dict[str, Any]) -> int:
    annotations = ingress["metadata"]["annotations"]
    body = size_bytes(annotations["nginx.ingress.kubernetes.io/proxy-body-size"])
    assert body == size_bytes(annotations["nginx.org/client-max-body-size"])
    return body


def ingress_paths(ingress: dict[str, Any]) -> list[str]:
    return [path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]


def test_k8s_ingress_has_cert_manager_tls_and_central_sized_bodies() -> None:
    """1 MiB (central's FACEGATE_MAX_BODY_BYTES) on the API; the large limit only on the upload routes
    (the API's two and the console's two), in an Ingress of their own."""
    api, uploads = one("Ingress", "facegate-central"), one("Ingress", "facegate-central-uploads")
    assert api["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    assert api["spec"]["tls"][0]["secretName"] == "facegate-tls"
    assert uploads["spec"]["tls"] == api["spec"]["tls"]
    defaults = CentralSettings(database_url="", secret_key="", storage=S3Settings("x", "x", "x"))
    assert body_limit(api) == defaults.max_body_bytes
    assert body_limit(uploads) == max(limit for _, _, limit in upload_limits())
    photos = re.compile(ingress_paths(uploads)[0])
    assert photos.fullmatch("/api/v1/people/0b0c5e4e-5e3b-4a1b-9a5e-1c2d3e4f5a6b/photos")
    assert not photos.fullmatch("/api/v1/people/x/photos/y") and not photos.fullmatch("/api/v1/people")
    assert ingress_paths(uploads)[1:] == [
        "/api/v1/enrollment-jobs",
        "/console/people/[^/]+/photos$",  # the console's drop zone
        "/console/jobs",  # the console's zip upload
    ]
    paths = set(ingress_paths(api))
    assert "/metrics" not in paths and "/" not in paths and "/ready" not in paths


def test_k8s_websocket_ingress_holds_connections_for_an_hour() -> None:
    ws = one("Ingress", "facegate-central-ws")
    annotations = ws["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert annotations["nginx.org/websocket-services"] == "facegate-central"
    assert [path["path"] for rule in ws["spec"]["rules"] for path in rule["http"]["paths"]] == [
        "/ws/",
        "/console/live",
    ]
    assert ws["spec"]["tls"] == one("Ingress", "facegate-central")["spec"]["tls"]


def test_k8s_broker_runs_on_the_generated_files_from_a_secret() -> None:
    broker = one("Deployment", "facegate-broker")
    spec = pod_spec(broker)
    mosquitto = next(c for c in spec["containers"] if c["name"] == "mosquitto")
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    config_mount = next(
        m
        for m in mosquitto["volumeMounts"]
        if volumes[m["name"]].get("secret", {}).get("secretName") == "facegate-broker-config"
    )
    assert mosquitto["command"] == ["mosquitto", "-c", f"{config_mount['mountPath']}/mosquitto.conf"]
    assert broker["spec"]["strategy"]["type"] == "Recreate"  # one broker owns the data volume
    data = next(m for m in mosquitto["volumeMounts"] if "persistentVolumeClaim" in volumes[m["name"]])
    assert data["mountPath"] == "/mosquitto/data"
    service = one("Service", "facegate-broker")
    config = one("ConfigMap", "facegate-central")["data"]
    assert config["FACEGATE_MQTT_URL"] == f"mqtts://{service['metadata']['name']}.facegate.svc:8883"


def policies() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"] for doc in of_kind("NetworkPolicy")}


def test_k8s_network_policies_deny_by_default_and_admit_only_the_ingress_and_monitoring_to_central() -> None:
    found = policies()
    deny = found["facegate-default-deny"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    central = found["facegate-central"]
    assert (
        central["podSelector"]["matchLabels"].items()
        <= pod_labels(one("StatefulSet", "facegate-central")).items()
    )
    sources = {
        rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: rule["ports"]
        for rule in central["ingress"]
    }
    assert sources == {
        "ingress-nginx": [{"protocol": "TCP", "port": 8000}],
        "monitoring": [{"protocol": "TCP", "port": 9100}],  # FACEGATE_METRICS_PORT: /metrics only there
    }
    assert all(len(rule["from"]) == 1 and "podSelector" not in rule["from"][0] for rule in central["ingress"])
    broker = found["facegate-broker"]
    assert (
        broker["podSelector"]["matchLabels"].items()
        <= pod_labels(one("Deployment", "facegate-broker")).items()
    )
    assert broker["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8883}]}]  # edges: from anywhere
    ingress_paths_all = [path for ingress in of_kind("Ingress") for path in ingress_paths(ingress)]
    assert not [p for p in ingress_paths_all if p.startswith(("/metrics", "/ready"))]
