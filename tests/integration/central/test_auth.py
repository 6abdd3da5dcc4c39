"""Central auth: API keys and their hashes, Mosquitto password hashes (against the real tool and broker)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.auth import (
    AuthError,
    HashFormatError,
    hash_secret,
    mosquitto_hash,
    new_api_key,
    parse_api_key,
    password_file_line,
    verify_mosquitto,
    verify_secret,
)
from central.auth.keys import MIN_ITERATIONS, parse_hash
from central.auth.passwords import parse_mosquitto_hash
from devtools.services import MosquittoFactory, MqttBroker

SECRET = "test-secret-key-that-is-long-enough-0123456789"

# --- API keys -----------------------------------------------------------------------------------------


def test_api_key_new_then_parse_and_verify_round_trips() -> None:
    key = new_api_key()
    stored = hash_secret(key.secret)
    assert key.display == f"fg_{key.prefix}_{key.secret}"
    assert parse_api_key(key.display) == (key.prefix, key.secret)
    assert verify_secret(key.secret, stored)
    assert key.secret not in repr(key)


def test_api_key_wrong_secret_does_not_verify() -> None:
    stored = hash_secret(new_api_key().secret)
    assert not verify_secret(new_api_key().secret, stored)


def test_api_key_secret_has_at_least_32_bytes_of_entropy() -> None:
    keys = [new_api_key() for _ in range(20)]
    assert all(len(base64.urlsafe_b64decode(k.secret + "=")) >= 32 for k in keys)
    assert all(re.fullmatch(r"[a-z0-9]{8}", k.prefix) for k in keys)
    assert len({k.secret for k in keys}) == 20


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fg_",
        "fg_abcdefgh",
        "fg_abcdefgh_",
        "xx_abcdefgh_" + "a" * 43,
        "fg_ABCDEFGH_" + "a" * 43,
        "fg_abcdefg_" + "a" * 43,
        "fg_abcdefgh_" + "a" * 42,
        "fg_abcdefgh_" + "a" * 42 + "=",
        "Bearer fg_abcdefgh_" + "a" * 43,
    ],
)
def test_api_key_malformed_raises_auth_error(text: str) -> None:
    with pytest.raises(AuthError, match="fg_<8 chars") as info:
        parse_api_key(text)
    assert info.value.reason == "malformed_key"


def test_api_key_secret_with_underscores_parses() -> None:
    secret = "_" * 10 + "a" * 33
    assert parse_api_key(f"fg_abcdefgh_{secret}") == ("abcdefgh", secret)


def test_hash_secret_format_is_self_describing_with_minimum_iterations() -> None:
    stored = hash_secret("s3cret")
    assert re.fullmatch(r"pbkdf2_sha256\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+", stored)
    iterations, salt, digest = parse_hash(stored)
    assert iterations >= MIN_ITERATIONS >= 100_000  # keeps verification at ~40 ms, see docs/central-auth.md
    assert (len(salt), len(digest)) == (16, 32)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "sha1$100000$c2FsdHNhbHQ=$aGFzaA==",
        "pbkdf2_sha256$1000$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==",
        "pbkdf2_sha256$100000$not*base64$aGFzaA==",
        "pbkdf2_sha256$abc$c2FsdHNhbHQ=$aGFzaA==",
    ],
)
def test_verify_secret_malformed_stored_hash_raises(stored: str) -> None:
    with pytest.raises(HashFormatError):
        verify_secret("anything", stored)


# --- Mosquitto password hashes ------------------------------------------------------------------------


def _mosquitto_passwd() -> str:
    binary = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if binary is None:
        pytest.skip("mosquitto_passwd not installed; run scripts/ensure-services.sh")
    return binary


def test_verify_mosquitto_accepts_hash_made_by_mosquitto_passwd(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run([_mosquitto_passwd(), "-c", "-b", str(path), "edge-1", "pa:ss wörd"], check=True)
    username, stored = path.read_text().strip().split(":", 1)
    assert username == "edge-1"
    assert stored.startswith("$7$")
    assert verify_mosquitto("pa:ss wörd", stored)
    assert not verify_mosquitto("pa:ss word", stored)


def test_mosquitto_hash_has_the_shape_mosquitto_passwd_writes(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run([_mosquitto_passwd(), "-c", "-b", str(path), "u", "p"], check=True)
    theirs = parse_mosquitto_hash(path.read_text().strip().split(":", 1)[1])
    ours = parse_mosquitto_hash(mosquitto_hash("p"))
    assert ours[0] == theirs[0] == 101
    assert (len(ours[1]), len(ours[2])) == (len(theirs[1]), len(theirs[2])) == (12, 64)


def test_mosquitto_hash_with_fixed_salt_is_deterministic() -> None:
    salt = bytes(range(12))
    assert mosquitto_hash("pw", salt=salt) == mosquitto_hash("pw", salt=salt)
    assert verify_mosquitto("pw", mosquitto_hash("pw", salt=salt, iterations=1000))


def test_verify_mosquitto_old_sha512_format_raises() -> None:
    with pytest.raises(HashFormatError, match=r"\$7\$"):
        verify_mosquitto("pw", "$6$c2FsdHNhbHRzYWx0$aGFzaA==")


@pytest.mark.parametrize("username", ["", "a:b", "line\nbreak", " padded", "#comment"])
def test_password_file_line_bad_username_raises(username: str) -> None:
    with pytest.raises(ValueError, match="password file"):
        password_file_line(username, mosquitto_hash("pw"))


def _connack(broker: MqttBroker, username: str, password: str) -> ReasonCode:
    """CONNECT with username/password; the broker's CONNACK reason code."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"fg-auth-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
    )
    client.username_pw_set(username, password)
    codes: list[ReasonCode] = []
    done = threading.Event()

    def on_connect(
        _c: mqtt.Client, _u: object, _f: mqtt.ConnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        codes.append(rc)
        done.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    try:
        assert done.wait(5), "no CONNACK within 5 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_mosquitto_broker_accepts_our_hash_and_refuses_wrong_password(
    mosquitto_factory: MosquittoFactory, service_backend: str, tmp_path: Path
) -> None:
    if service_backend == "docker":
        pytest.skip("the password file is written on the host; a broker container cannot read it")
    path = tmp_path / "passwd"
    lines = [password_file_line("edge-a", mosquitto_hash("right-secret"))]
    lines.append(password_file_line("edge-b", mosquitto_hash("other", iterations=1000)))
    path.write_text("\n".join(lines) + "\n")
    broker = mosquitto_factory(persistence=False, extra_config=[f"password_file {path}"]).endpoint
    assert not _connack(broker, "edge-a", "right-secret").is_failure
    assert not _connack(broker, "edge-b", "other").is_failure
    assert _connack(broker, "edge-a", "wrong-secret").is_failure
    assert _connack(broker, "edge-b", "right-secret").is_failure
