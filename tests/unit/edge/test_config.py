"""The edge device configuration: schema, field paths in errors, the files in firmware_config/ and the
`facegate edge config validate` command (secrets and profiles: test_edge_config_secrets.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

import msgspec
import pytest
import yaml

from common.errors import ConfigError
from edge.config.checks import infer_kind
from edge.config.loader import DeviceConfig, check_files, load_config, validate_files
from edge.config.schema import MotionSettings, motion_settings
from tests.support.device_files import minimal, problem, write
from tests.support.paths import REPO

ROOT = REPO
FIRMWARE = ROOT / "firmware_config"
README = FIRMWARE / "README.md"
FACEGATE = str(Path(sys.executable).parent / "facegate")
REQUIRED = "required"


# --- the files in firmware_config/ -----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FIRMWARE.rglob("*.yaml")), ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_firmware_config_file_any_validates(path: Path) -> None:
    is_profile = path.parent.name == "profiles"
    assert validate_files([path], profile=is_profile, resolve=False) == [(path, None)]


def test_firmware_config_folders_not_empty_hold_profiles_and_examples() -> None:
    assert len(list((FIRMWARE / "examples").glob("*.yaml"))) >= 3
    assert {p.stem for p in (FIRMWARE / "profiles").glob("*.yaml")} >= {"gpu-box", "cpu-small"}


def test_readme_yaml_block_any_validates(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"block{i}.yaml"
        path.write_text(block, encoding="utf-8")
        load_config(path, resolve=False)


def test_example_branch_lobby_profile_merged_and_camera_overrides_kept() -> None:
    config = load_config(FIRMWARE / "examples" / "branch-lobby.yaml", resolve=False)
    assert config.pipeline.runtime.providers == "cuda"
    assert config.pipeline.detection.detect_size == 960
    assert [c.fps_cap for c in config.cameras] == [8.0, 8.0, 5.0, 8.0]
    assert config.cameras[1].detect_size == 1280
    assert {c.kind for c in config.cameras} == {"stream"}
    assert config.broker.client_id == "facegate-branch-042-lobby-1"


# --- defaults: the README's tables are the code's ---------------------------------------------------


def _struct_in(kind: Any) -> tuple[type[msgspec.Struct] | None, str]:
    """The Struct a field holds (directly or as a tuple of them) and the suffix of its section name."""
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return kind, ""
    args = get_args(kind)
    if (
        get_origin(kind) is tuple
        and args
        and isinstance(args[0], type)
        and issubclass(args[0], msgspec.Struct)
    ):
        return args[0], "[]"
    structs = [a for a in args if isinstance(a, type) and issubclass(a, msgspec.Struct)]
    if len(structs) == 1:  # a section that may also be written as a plain value (`motion: off`)
        return structs[0], ""
    return None, ""


def schema_sections(kind: type[msgspec.Struct] = DeviceConfig, name: str = "") -> dict[str, dict[str, Any]]:
    """{section: {field: default or REQUIRED}} for every non-section field, walking nested Structs."""
    fields: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for field in msgspec.structs.fields(kind):
        inner, suffix = _struct_in(field.type)
        if inner is not None:
            sections |= schema_sections(
                inner, f"{name}.{field.name}{suffix}" if name else field.name + suffix
            )
        elif field.default is msgspec.NODEFAULT:
            fields[field.name] = REQUIRED
        else:
            default = msgspec.to_builtins(field.default)
            fields[field.name] = list(default) if isinstance(default, tuple) else default
    return {name or "top level": fields, **sections}


def readme_sections() -> dict[str, dict[str, Any]]:
    """{section: {field: default}} from the README's tables under `### section` headings."""
    sections: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"^### `?([^`]+)`?$", line):
            current = sections.setdefault(heading[1], {})
        elif (row := re.match(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|", line)) and current is not None:
            cell = row[2].strip()
            current[row[1]] = REQUIRED if cell == REQUIRED else yaml.safe_load(cell.strip("`"))
    return sections


def test_readme_tables_every_field_documented_with_code_default() -> None:
    assert readme_sections() == schema_sections()


def test_config_minimal_file_key_defaults_as_documented(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal()))
    camera = config.cameras[0]
    assert (camera.kind, camera.fps_cap, camera.detect_size, camera.roi, camera.enabled) == (
        "stream",
        5.0,
        None,
        None,
        True,
    )
    assert config.pipeline.detection.detect_size == 640
    assert config.thresholds == msgspec.convert(
        {"match": None, "margin": 0.05, "min_quality": 0.3}, type(config.thresholds)
    )
    assert (config.tracker.min_frames, config.tracker.iou_threshold, config.tracker.timeout_s) == (
        3,
        0.3,
        2.0,
    )
    assert (config.gallery.db_path, config.gallery.exact_below, config.gallery.index.m) == (
        "/var/lib/facegate/gallery.db",
        5000,
        16,
    )
    assert (config.outbox.synchronous, config.outbox.when_full, config.outbox.max_bytes) == (
        "FULL",
        "drop_oldest",
        500_000_000,
    )
    assert (config.health.host, config.health.port, config.heartbeat_s) == ("0.0.0.0", 9108, 30.0)
    assert config.broker.client_id == "facegate-hq-lobby-1"


def test_config_thresholds_match_passed_to_pipeline_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {**minimal(), "thresholds": {"match": 0.42}}))
    assert config.pipeline_settings().match_threshold == 0.42
    assert config.pipeline.match_threshold is None


# --- errors name field paths ------------------------------------------------------------------------


def test_config_wrong_value_in_second_camera_names_its_path(tmp_path: Path) -> None:
    document = minimal()
    document["cameras"].append({"id": "hall", "source": "rtsp://10.0.0.6/s", "fps_cap": -2})
    assert problem(tmp_path, document) == "cameras[1].fps_cap: Expected float >= 0.1, got -2"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ([], "unknown field 'fpscap' at top level"),
        (["cameras", 0], "unknown field 'fpscap' at cameras[0]"),
        (["pipeline", "detection"], "unknown field 'fpscap' at pipeline.detection"),
        (["gallery", "index"], "unknown field 'fpscap' at gallery.index"),
    ],
)
def test_config_unknown_field_anywhere_rejected_naming_path(
    tmp_path: Path, where: list[Any], expected: str
) -> None:
    document = minimal()
    document["pipeline"] = {"detection": {}}
    document["gallery"] = {"index": {}}
    target: Any = document
    for step in where:
        target = target[step]
    target["fpscap"] = 3
    assert problem(tmp_path, document) == expected


def test_config_several_wrong_fields_all_reported(tmp_path: Path) -> None:
    document = minimal()
    del document["edge"]
    document["cameras"][0]["roi"] = [0.1, 0.2]
    document["pipeline"] = {"runtime": {"providers": "gpu"}}
    document["health"] = {"port": 70000}
    message = problem(tmp_path, document)
    assert message.split("; ") == [
        "cameras[0].roi: Expected list of length 4, got 2",
        "pipeline.runtime.providers: must be one of 'auto', 'cpu', 'cuda', got 'gpu'",
        "health.port: Expected int <= 65535, got 70000",
        "edge: required field missing",
    ]


def test_config_numeric_id_asks_for_quotes(tmp_path: Path) -> None:
    assert problem(tmp_path, {**minimal(), "site": 7}) == "site: Expected str, got int (put it in quotes)"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"site": "branch 7"}, "site: 'branch 7' must be 1-64 letters, digits"),
        ({"health": {"port": 0}}, "health.port: Expected int >= 1, got 0"),
        ({"gallery": {"ids": ["staff", "a/b"]}}, "gallery.ids[1]: 'a/b' must be 1-64"),
        (
            {"cameras": [{"id": "a", "source": "rtsp://h/1"}, {"id": "a", "source": "rtsp://h/2"}]},
            "cameras: id 'a' is used 2 times",
        ),
        (
            {"cameras": [{"id": "a", "source": "rtsp://h/1", "roi": [0.5, 0, 0.6, 1]}]},
            "cameras[0].roi: [x, y, w, h] must",
        ),
        (
            {"cameras": [{"id": "a", "source": "rtsp://h/1", "loop": True}]},
            "cameras[0].loop: only a video or folder",
        ),
        ({"cameras": [{"id": "a", "source": "/srv/cam.txt"}]}, "cameras[0].kind: cannot tell the kind"),
        (
            {"cameras": [{"id": "a", "source": "rtsp://h/1", "detect_source": "/srv/sub/"}]},
            "cameras[0].detect_source: a detection stream needs video or stream sources",
        ),
        (
            {"cameras": [{"id": "a", "source": "rtsp://h/1", "detect_source": "udp://h:1"}]},
            "cameras[0].detect_source: cannot tell what it is",
        ),
        (
            {"cameras": [{"id": "a", "source": "rtsp://h/1", "detect_size": 10}]},
            "cameras[0].detect_size: must be 0",
        ),
        ({"cameras": []}, "cameras: at least one camera is needed"),
        ({"sync_only": True}, "cameras: a sync_only edge has no cameras"),
        ({"broker": {"url": "tcp://broker:1883"}}, "broker.url: must be mqtt://HOST[:PORT]"),
        (
            {"broker": {"url": "mqtt://b:1883", "ca_file": "ca.pem"}},
            "broker.ca_file: TLS files need an mqtts:// url",
        ),
        (
            {"broker": {"url": "mqtts://b", "cert_file": "c.pem"}},
            "broker.cert_file, broker.key_file: a client",
        ),
        ({"pipeline": {"match_threshold": 0.4}}, "pipeline.match_threshold: not used on an edge"),
        ({"outbox": {"path": "/var/lib/facegate/gallery.db"}}, "outbox.path: must not be the same file"),
    ],
)
def test_config_inconsistent_fields_rejected_naming_path(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert expected in problem(tmp_path, {**minimal(), **change})


def test_config_sync_only_without_cameras_valid(tmp_path: Path) -> None:
    document = {**minimal(), "sync_only": True, "cameras": [], "gallery": {"ids": ["staff"]}}
    assert load_config(write(tmp_path, document)).cameras == ()


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("rtsp://10.0.0.5:554/s", "stream"),
        ("https://cam.local/video.mjpg", "stream"),
        ("/srv/videos/lobby.MP4", "video"),
        ("/srv/photos/", "folder"),
        ("photos", "folder"),
        ("/srv/notes.txt", None),
        ("udp://239.0.0.1:1234", None),
    ],
)
def test_infer_kind_source_forms_classified(source: str, kind: str | None) -> None:
    assert infer_kind(source) == kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the file must hold a mapping of settings, not a list"),
        ("site: a\nsite: b\n", "invalid YAML at line 2, column 1: key 'site' is given twice"),
        ("site: [a\n", "invalid YAML at line 2"),
    ],
)
def test_config_bad_yaml_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "device.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path)


# --- the command ------------------------------------------------------------------------------------


def run_validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACEGATE, "edge", "config", "validate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_validate_good_and_bad_file_exit_2_one_line_each(tmp_path: Path) -> None:
    good = write(tmp_path, minimal(), "good.yaml")
    bad_document = minimal()
    bad_document["cameras"][0]["fpscap"] = 3
    bad = write(tmp_path, bad_document, "bad.yaml")
    proc = run_validate(str(good), str(bad))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.splitlines() == [f"{good}: ok", f"{bad}: error: unknown field 'fpscap' at cameras[0]"]


@pytest.mark.parametrize(
    ("url", "password", "warned"),
    [
        ("mqtt://10.107.0.2:1883", {"password": "pw"}, True),
        ("mqtt://broker.example.com", {"password_env": "FACEGATE_BROKER_PASSWORD"}, True),
        ("mqtt://localhost:1883", {"password": "pw"}, False),
        ("mqtt://127.0.0.1:1883", {"password": "pw"}, False),
        ("mqtt://10.107.0.2:1883", {}, False),
        ("mqtts://10.107.0.2:8883", {"password": "pw"}, False),
    ],
)
def test_config_warnings_plain_mqtt_password_to_another_host(
    tmp_path: Path, url: str, password: dict[str, str], warned: bool
) -> None:
    document = minimal()
    document["broker"] = {"url": url, "username": "hq.lobby-1", **password} if password else {"url": url}
    [(_, found, warnings)] = check_files([write(tmp_path, document)], resolve=False)
    assert found is None
    assert bool(warnings) == warned
    if warned:
        assert warnings[0].startswith("broker.url: plain mqtt:// sends the broker password unencrypted")


def test_cli_validate_warns_but_exits_0_for_a_plain_mqtt_password(tmp_path: Path) -> None:
    document = minimal()
    document["broker"]["url"] = "mqtt://10.107.0.2:1883"
    path = write(tmp_path, document)
    proc = run_validate(str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"{path}: ok"
    assert proc.stdout.splitlines()[1].startswith(f"{path}: warning: broker.url: plain mqtt://")


def test_cli_validate_all_good_exit_0(tmp_path: Path) -> None:
    examples = sorted(str(p) for p in (FIRMWARE / "examples").glob("*.yaml"))
    proc = run_validate("--no-secrets", *examples)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"{p}: ok" for p in examples]


def test_config_motion_off_on_and_mapping_from_yaml(tmp_path: Path) -> None:
    document = {k: v for k, v in minimal().items() if k != "cameras"}
    cameras = (
        "cameras:\n"
        "  - {id: a, source: rtsp://10.0.0.5/s, motion: off}\n"
        "  - {id: b, source: rtsp://10.0.0.6/s, motion: on}\n"
        "  - {id: c, source: rtsp://10.0.0.7/s}\n"
    )
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(document) + cameras + "camera_defaults: {motion: {threshold: 40}}\n")
    a, b, c = (motion_settings(camera.motion) for camera in load_config(path).cameras)
    assert (a.enabled, b, c.threshold) == (False, MotionSettings(), 40)


def test_config_motion_bad_value_names_its_path(tmp_path: Path) -> None:
    document = minimal()
    document["cameras"][0]["motion"] = {"lighting": 3}
    assert problem(tmp_path, document) == "cameras[0].motion.lighting: Expected float <= 1.0, got 3"
