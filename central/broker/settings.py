"""Central's own broker logins for the generated password file, from the environment.

The broker binds client ids to logins (`use_username_as_clientid`, central/broker/conf.py), so each
central replica logs in with a name of its own: FACEGATE_BROKER_CENTRAL_USER lists them, separated by
commas (`central-1,central-2`; default: the MQTT login below, else `central`). They share one password.

No plain secret is written to disk: the password file gets a `$7$` hash, taken from
FACEGATE_BROKER_CENTRAL_HASH (make one with `facegate central broker-hash`, which reads the password on
stdin), or, when that is unset, computed in memory from the password central's MQTT client uses:
FACEGATE_MQTT_PASSWORD, else the user info of FACEGATE_MQTT_URL (e.g. `mqtts://central:SECRET@broker`).
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


def central_accounts_from_env(env: Mapping[str, str], previous: str = "") -> list[CentralAccount]:
    """Central's broker accounts, one per name in FACEGATE_BROKER_CENTRAL_USER; ConfigError names the
    variables to set when there is no password or hash.

    `previous` is the current password file's text: a hash there that matches the MQTT password is
    kept, so regenerating an unchanged registry writes an identical file (and needs no reload)."""
    users = [name.strip() for name in env.get(USER_ENV, "").split(",") if name.strip()]
    stored = env.get(HASH_ENV, "").strip()
    if stored:
        return [_account(user, stored) for user in users or [DEFAULT_USER]]
    url = urlsplit(env.get(MQTT_URL_ENV, "").strip())
    login = env.get(MQTT_USER_ENV, "").strip() or unquote(url.username or "")
    password = env.get(MQTT_PASSWORD_ENV, "").strip() or unquote(url.password or "")
    if password and (users or login):
        if users and login and login not in users:
            raise ConfigError(
                f"{USER_ENV}={','.join(users)!r} does not hold {login!r}, the login central's MQTT client "
                "uses: list every replica's login"
            )
        fresh = mosquitto_hash(password)
        return [
            _account(user, _previous_hash(previous, user, password) or fresh) for user in users or [login]
        ]
    raise ConfigError(
        f"central's broker logins: set {HASH_ENV} (from `facegate central broker-hash`) and {USER_ENV} "
        f"(one name per central replica, comma-separated; default {DEFAULT_USER!r}), or give central's MQTT "
        f"password: {MQTT_PASSWORD_ENV} (or {MQTT_URL_ENV} with user and password) with {USER_ENV} or "
        f"{MQTT_USER_ENV}"
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
