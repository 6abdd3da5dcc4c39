"""Fixtures of the fleet-rollout tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from demo.sample_faces import SamplePhoto
from devtools.services import MqttBroker
from devtools.services.ports import free_port
from tests.support import ansible_rig
from tests.support.once import once_per_run

FleetMaker = Callable[[str, Sequence[str]], ansible_rig.Fleet]


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The releases' wheelhouse (good release and canary), built once per run for every worker."""
    return once_per_run(tmp_path_factory, "fleet-wheelhouse", ansible_rig.build_wheelhouse)


@pytest.fixture
def make_fleet(
    tmp_path: Path, wheels: Path, model_dir: Path, mqtt_broker: MqttBroker, samples: dict[str, SamplePhoto]
) -> Iterator[FleetMaker]:
    """`make_fleet(site_prefix, edge_names)`: edges of one site (a unique site id: the shared broker may
    serve other tests) whose camera reads a folder holding a real photo; stopped afterwards."""
    made: list[ansible_rig.Fleet] = []

    def make(site_prefix: str, names: Sequence[str]) -> ansible_rig.Fleet:
        broker = (mqtt_broker.host, mqtt_broker.port)
        fleet = ansible_rig.Fleet.with_camera(
            tmp_path, wheels, model_dir, broker, samples["obama"].path, site_prefix
        )
        for name in names:
            fleet.add(name, fleet.camera, free_port())
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.stop_all()
