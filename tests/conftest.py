"""Shared pytest configuration: backing-service fixtures (see docs/testing-services.md), face fixtures, and
the markers that follow the folders.

The folder a test lives in is its level, and its marker:
- `unit`: tests/unit/, no service (models, photos, files, threads, local HTTP servers are fine);
- `integration`: tests/integration/<component>/, real PostgreSQL, Redis, MQTT broker or S3 server;
- `system`: tests/system/, whole processes together (end to end, faults, demo, proxies, images), and
  `fleet` for tests/system/fleet/ (the Ansible rollout).
`make test-fast` runs `-m "not system"`; `make test-fleet` runs `-m fleet`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.service_fixtures", "tests.support.faces", "tests.support.central_app"]

TESTS = Path(__file__).resolve().parent
LEVELS = ("unit", "integration", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if parts[0] not in LEVELS:
            raise pytest.UsageError(
                f"{item.nodeid}: a test lives under tests/unit, tests/integration or tests/system"
            )
        item.add_marker(parts[0])
        if parts[0] == "system" and len(parts) > 2 and parts[1] == "fleet":
            item.add_marker("fleet")
