"""The edge device configuration: secrets from the file, a secret file or the environment, and profiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.errors import ConfigError
from edge.config.loader import load_config, load_profile
from tests.support.device_files import minimal, problem, write

# --- secrets ----------------------------------------------------------------------------------------


def test_config_secret_from_relative_file_read_without_newline(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "broker").write_text("from-file\n", encoding="utf-8")
    document = minimal()
    document["broker"] = {**document["broker"], "password": "", "password_file": "secrets/broker"}
    assert load_config(write(tmp_path, document)).broker.password == "from-file"


def test_config_secret_from_env_read(tmp_path: Path) -> None:
    document = minimal()
    document["central"] = {**document["central"], "secret": "", "secret_env": "FG_TEST_SECRET"}
    config = load_config(write(tmp_path, document), env={"FG_TEST_SECRET": "from-env"})
    assert config.central.secret == "from-env"
    assert config.central.secret_env == "FG_TEST_SECRET"


def test_config_secret_missing_env_and_file_both_named(tmp_path: Path) -> None:
    document = minimal()
    document["broker"] = {**document["broker"], "password": "", "password_env": "FG_TEST_UNSET"}
    document["central"] = {**document["central"], "secret": "", "secret_file": str(tmp_path / "absent")}
    message = problem(tmp_path, document, env={})
    assert "broker.password_env: environment variable FG_TEST_UNSET is not set" in message
    assert f"central.secret_file: cannot read {tmp_path / 'absent'}" in message


def test_config_secret_two_sources_rejected(tmp_path: Path) -> None:
    document = minimal()
    document["central"] = {**document["central"], "secret_env": "FG_TEST_SECRET"}
    message = problem(tmp_path, document, env={"FG_TEST_SECRET": "x"})
    assert message == "central: the secret has 2 sources (secret, secret_env): keep one"


def test_config_secret_none_for_central_rejected(tmp_path: Path) -> None:
    document = minimal()
    document["central"] = {"url": "https://c.example.com", "key_id": "k"}
    assert problem(tmp_path, document) == "central.secret: required: set secret, secret_file or secret_env"


def test_config_secret_values_absent_from_repr_and_errors(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal()))
    assert "s3cret" not in repr(config) and "'pw'" not in repr(config)
    document = minimal()
    document["broker"]["password"] = 123456
    message = problem(tmp_path, document)
    assert message.startswith("broker.password: Expected str, got int") and "123456" not in message


def test_config_no_resolve_skips_reading_secrets(tmp_path: Path) -> None:
    document = minimal()
    document["broker"] = {**document["broker"], "password": "", "password_file": "/run/secrets/absent"}
    assert load_config(write(tmp_path, document), resolve=False).broker.password == ""


# --- profiles ---------------------------------------------------------------------------------------


def test_config_profile_merged_under_device_file(tmp_path: Path) -> None:
    profile = {
        "pipeline": {"runtime": {"providers": "cpu", "intra_op_threads": 2}},
        "camera_defaults": {"fps_cap": 2.0},
        "gallery": {"ids": ["from-profile"], "exact_below": 100},
    }
    write(tmp_path, profile, "small.yaml")
    document = {**minimal(), "profile": "small.yaml", "pipeline": {"runtime": {"intra_op_threads": 4}}}
    document["gallery"] = {"ids": ["staff"]}
    document["cameras"].append({"id": "hall", "source": "/srv/hall.mp4", "fps_cap": 1.0})
    config = load_config(write(tmp_path, document))
    assert (config.pipeline.runtime.providers, config.pipeline.runtime.intra_op_threads) == ("cpu", 4)
    assert (config.gallery.ids, config.gallery.exact_below) == (("staff",), 100)
    assert [c.fps_cap for c in config.cameras] == [2.0, 1.0]


def test_config_profile_setting_site_rejected(tmp_path: Path) -> None:
    write(tmp_path, {"site": "x", "tracker": {"min_frames": 2}}, "p.yaml")
    with pytest.raises(ConfigError, match="site belong in the device file"):
        load_config(write(tmp_path, {**minimal(), "profile": "p.yaml"}))


def test_config_profile_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profile .*absent\.yaml: cannot read"):
        load_config(write(tmp_path, {**minimal(), "profile": "absent.yaml"}))


def test_load_profile_bad_value_names_path(tmp_path: Path) -> None:
    path = write(tmp_path, {"camera_defaults": {"fps_cap": 0}}, "p.yaml")
    with pytest.raises(ConfigError, match=re.escape("camera_defaults.fps_cap: Expected float >= 0.1, got 0")):
        load_profile(path)
