"""From device-file sections to component settings."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from common.errors import ConfigError
from edge import assembly
from edge.config.schema import BrokerSettings, Camera, CentralSettings, DeviceConfig, GallerySettings


def _config(url: str, **broker: object) -> DeviceConfig:
    return DeviceConfig(
        site="s",
        edge="e",
        broker=msgspec.convert({"url": url, **broker}, BrokerSettings),
        central=CentralSettings(url="http://c", key_id="k", secret="x"),
    )


def test_mqtt_settings_plain_and_tls_ports() -> None:
    plain = assembly.mqtt_settings(_config("mqtt://broker.local"))
    assert (plain.host, plain.port, plain.tls) == ("broker.local", 1883, False)
    tls = assembly.mqtt_settings(
        _config("mqtts://broker.local", ca_file="/etc/ca.pem", username="u", password="p")
    )
    assert (tls.port, tls.tls, tls.ca_file, tls.username) == (8883, True, "/etc/ca.pem", "u")
    assert assembly.mqtt_settings(_config("mqtts://b:9000")).port == 9000


@pytest.mark.parametrize("url", ["http://broker", "broker:1883", "mqtt://"])
def test_mqtt_settings_bad_url_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"broker\.url"):
        assembly.mqtt_settings(_config(url))


def test_gallery_path_one_database_per_gallery() -> None:
    settings = GallerySettings(ids=("staff", "vip"), db_path="/var/lib/facegate/gallery.db")
    assert assembly.gallery_path(settings, "vip") == Path("/var/lib/facegate/gallery.vip.db")


def test_source_settings_carry_camera_options() -> None:
    camera = Camera(id="c", source="/v.mp4", kind="video", loop=True, realtime=False, fps_cap=2.0)
    settings = assembly.source_settings(camera)
    assert (settings.loop, settings.realtime, settings.fps_cap) == (True, False, 2.0)
    assert assembly.source_kind(camera) == "video"
