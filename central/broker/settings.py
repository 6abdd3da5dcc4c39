"""Central's own broker login for the generated password file, from the environment.

No plain secret is written to disk: the password file gets a `$7$` hash, taken from
FACEGATE_BROKER_CENTRAL_HASH (make one with `facegate central broker-hash`, which reads the password on
stdin), or, when that is unset, computed in memory from the login central's MQTT client uses:
FACEGATE_MQTT_USERNAME / FACEGATE_MQTT_PASSWORD, else the user info of FACEGATE_MQTT_URL (e.g.
`mqtts://central:SECRET@broker:8883`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from central.auth.errors import HashFormatError
from central.auth.passwords import mosquitto_hash, verify_mosquitto
from central.broker.acl import CentralAccount
from common.errors import ConfigError
from common.topics import TopicError

USER_ENV = "FACEGATE_BROKER_CENTRAL_USER"
HASH_ENV = "FACEGATE_BROKER_CENTRAL_HASH"
MQTT_URL_ENV = "FACEGATE_MQTT_URL"
MQTT_USER_ENV = "FACEGATE_MQTT_USERNAME"  # win over the URL's user info, as in central/mqtt/options.py
MQTT_PASSWORD_ENV = "FACEGATE_MQTT_PASSWORD"
DEFAULT_USER = "central"


def central_account_from_env(env: Mapping[str, str], previous: str = "") -> CentralAccount:
    """Central's broker account; ConfigError names the variables to set when there is none.

    `previous` is the current password file's text: a hash there that matches the URL's password is
    kept, so regenerating an unchanged registry writes an identical file (and needs no reload)."""
    stored = env.get(HASH_ENV, "").strip()
    if stored:
        return _account(env.get(USER_ENV, "").strip() or DEFAULT_USER, stored)
    url = urlsplit(env.get(MQTT_URL_ENV, "").strip())
    login = env.get(MQTT_USER_ENV, "").strip() or unquote(url.username or "")
    password = env.get(MQTT_PASSWORD_ENV, "").strip() or unquote(url.password or "")
    if login and password:
        user = env.get(USER_ENV, "").strip() or login
        if user != login:
            raise ConfigError(f"{USER_ENV}={user!r} but central's MQTT client logs in as {login!r}")
        return _account(user, _previous_hash(previous, user, password) or mosquitto_hash(password))
    raise ConfigError(
        f"central's broker login: set {HASH_ENV} (from `facegate central broker-hash`) and optionally "
        f"{USER_ENV} (default {DEFAULT_USER!r}), or give central's MQTT login: {MQTT_URL_ENV} with user "
        f"and password, or {MQTT_USER_ENV} and {MQTT_PASSWORD_ENV}"
    )


def _previous_hash(text: str, user: str, password: str) -> str | None:
    for line in text.splitlines():
        name, _, stored = line.partition(":")
        if name == user:
            try:
                return stored if verify_mosquitto(password, stored) else None
            except HashFormatError:
                return None
    return None


def _account(user: str, password_hash: str) -> CentralAccount:
    try:
        return CentralAccount(user, password_hash)
    except (TopicError, HashFormatError) as err:
        raise ConfigError(f"{USER_ENV}/{HASH_ENV}: {err}") from err
