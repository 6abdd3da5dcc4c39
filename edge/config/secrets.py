"""Secrets of the device configuration: the broker password and central's API secret.

Each comes from exactly one source: the value in the file (`password:`), a file (`password_file:`,
relative to the device file's directory; one trailing newline is dropped) or an environment variable
(`password_env:`). Files and variables are read at load; values never appear in errors or reprs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from common.errors import ConfigError
from edge.config.schema import BrokerSettings, CentralSettings, DeviceConfig


def sources(section: msgspec.Struct, name: str) -> list[str]:
    """The fields that give the secret `name`: some of `name`, `name_file`, `name_env`."""
    return [field for field in (name, f"{name}_file", f"{name}_env") if getattr(section, field)]


def source_problems(config: DeviceConfig) -> list[str]:
    """At most one source for the broker password (one when there is a username), one for central."""
    problems = []
    broker = sources(config.broker, "password")
    if len(broker) > 1:
        problems.append(f"broker: the password has {len(broker)} sources ({', '.join(broker)}): keep one")
    elif broker and not config.broker.username:
        problems.append(f"broker.{broker[0]}: a password needs broker.username")
    elif config.broker.username and not broker:
        problems.append(
            "broker.password: broker.username is set: set password, password_file or password_env"
        )
    central = sources(config.central, "secret")
    if len(central) > 1:
        problems.append(f"central: the secret has {len(central)} sources ({', '.join(central)}): keep one")
    elif not central:
        problems.append("central.secret: required: set secret, secret_file or secret_env")
    return problems


def _from_file(path: str, field: str, base: Path, problems: list[str]) -> str:
    target = base / Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as err:
        problems.append(f"{field}: cannot read {target}: {err.strerror or err}")
        return ""
    except UnicodeDecodeError:
        problems.append(f"{field}: {target} is not UTF-8 text")
        return ""
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        problems.append(f"{field}: {target} is empty")
    return value


def _from_env(name: str, field: str, env: Mapping[str, str], problems: list[str]) -> str:
    value = env.get(name)
    if value is None:
        problems.append(f"{field}: environment variable {name} is not set")
    elif not value:
        problems.append(f"{field}: environment variable {name} is empty")
    return value or ""


def _secret(
    section: msgspec.Struct, name: str, path: str, *, base: Path, env: Mapping[str, str], problems: list[str]
) -> str:
    file: str = getattr(section, f"{name}_file")
    variable: str = getattr(section, f"{name}_env")
    if file:
        return _from_file(file, f"{path}.{name}_file", base, problems)
    if variable:
        return _from_env(variable, f"{path}.{name}_env", env, problems)
    value: str = getattr(section, name)
    return value


def resolve_secrets(config: DeviceConfig, base: Path, env: Mapping[str, str]) -> DeviceConfig:
    """The config with `broker.password` and `central.secret` read from their file or variable."""
    problems: list[str] = []
    password = _secret(config.broker, "password", "broker", base=base, env=env, problems=problems)
    secret = _secret(config.central, "secret", "central", base=base, env=env, problems=problems)
    if problems:
        raise ConfigError("; ".join(problems))
    broker: BrokerSettings = msgspec.structs.replace(config.broker, password=password)
    central: CentralSettings = msgspec.structs.replace(config.central, secret=secret)
    return msgspec.structs.replace(config, broker=broker, central=central)
