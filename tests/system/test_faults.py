"""Faults injected into the running system while an edge streams events: the broker restarted cleanly,
the broker SIGKILLed (persistence on), central stopped and restarted, PostgreSQL restarted, the edge
SIGKILLed and restarted. After each, every event the edge made is in PostgreSQL, none twice.

Every instance is private (PostgreSQL cluster, broker, central, edge; the S3 bucket is fresh on the
session's private S3 server). One system serves the module; each test checks the whole history so far.
"What the edge made" comes from the edge itself: its sequence file (each camera's events are numbered
1, 2, 3, ... before they are written to the outbox; a SIGKILL may leave the number it took unused), its
`event` log lines and its outbox. See docs/system-tests.md."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from demo.sample_faces import SamplePhoto
from devtools.services.endpoints import PostgresService, S3Service
from devtools.services.instance import ServiceInstance
from tests.support.system_processes import EdgeProcess, wait_until
from tests.support.system_rig import System, private_backends, running_system
from tests.support.videos import compose_visit_video

EDGE = "north/door"
CAMERA = "door"
Seqs = set[tuple[str, int]]


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory,
    service_backend: str,
    s3_server: S3Service,
    model_dir: Path,
    samples: dict[str, SamplePhoto],
) -> Iterator[tuple[System, ServiceInstance[PostgresService]]]:
    tmp = tmp_path_factory.mktemp("system-faults")
    photos = [samples[name].path for name in ("obama2", "biden", "astronaut", "grace_hopper")]
    video = compose_visit_video(
        tmp / "visits.mp4", photos, seconds_each=1.0, fps=8.0, size=(480, 270), gap_s=0.8
    )
    with private_backends(tmp / "pg", s3_server, docker=service_backend == "docker") as (pg, bucket):
        sites = {"north": ["door"]}
        with running_system(tmp, pg.endpoint.dsn, s3_server, bucket, model_dir, sites, video) as system:
            yield system, pg


@pytest.fixture
def system(rig: tuple[System, ServiceInstance[PostgresService]]) -> System:
    return rig[0]


def made(edge: EdgeProcess) -> int:
    return edge.last_seqs().get(CAMERA, 0)


def streaming(edge: EdgeProcess, more: int = 2) -> int:
    """Wait until the edge makes `more` new events (events flow); the last sequence number then."""
    start = made(edge)
    wait_until(lambda: made(edge) >= start + more, 30, f"{more} new events from the edge (log: {edge.log})")
    return made(edge)


def assert_all_stored_once(system: System, edge: EdgeProcess, unused: Seqs = frozenset()) -> int:  # type: ignore[assignment]
    """Wait until every event the edge numbered so far (but `unused` numbers) is in PostgreSQL, then check
    that none is stored twice and nothing else is stored; the number of events."""
    last = made(edge)
    expected = {(CAMERA, seq) for seq in range(1, last + 1)} - unused
    took = wait_until(partial(system.holds_all, EDGE, expected), 60, "every event in PostgreSQL")
    stored = system.stored_seqs(*EDGE.split("/"))
    assert len(stored) == len(set(stored)), "an event stored twice"
    later = {(CAMERA, seq) for seq in range(last + 1, last + 50)}  # made since `last` was read
    assert set(stored) <= expected | unused | later, "an event the edge did not make"
    assert system.duplicate_ids() == []
    print(
        f"\n{len(expected)} events made, all stored once; the last arrived {took:.1f} s after the check began"
    )
    return len(expected)


def during_outage(
    edge: EdgeProcess, down: Callable[[], object], up: Callable[[], object], seconds: float
) -> None:
    """Inject the fault (`down`), keep it `seconds`, check the edge made events meanwhile that wait in its
    outbox for a receipt (so the fault hit events in flight), then recover (`up`)."""
    before = made(edge)
    down()
    time.sleep(seconds)
    waiting = edge.outbox_rows()
    during = made(edge) - before
    up()
    print(f"\n{during} events made during the fault; {waiting} waiting for a receipt at its end")
    assert during > 0, "the edge made no event while the fault lasted: not mid-stream"
    assert waiting > 0, "no event waited for a receipt: the fault did not hold anything up"


def test_system_broker_restarted_cleanly_mid_stream_loses_and_duplicates_nothing(system: System) -> None:
    edge = system.edges[EDGE]
    streaming(edge)
    assert system.broker is not None
    broker = system.broker

    during_outage(edge, broker.stop, broker.start, 4)
    streaming(edge)
    assert_all_stored_once(system, edge)


def test_system_broker_sigkilled_mid_stream_loses_and_duplicates_nothing(system: System) -> None:
    edge = system.edges[EDGE]
    streaming(edge)
    assert system.broker is not None
    broker = system.broker

    during_outage(edge, broker.kill, broker.start, 4)
    streaming(edge)
    assert_all_stored_once(system, edge)


def test_system_central_stopped_then_restarted_loses_and_duplicates_nothing(system: System) -> None:
    edge = system.edges[EDGE]
    streaming(edge)
    during_outage(edge, system.central.stop, system.central.start, 8)
    streaming(edge)
    assert_all_stored_once(system, edge)


def test_system_postgres_restarted_during_ingest_loses_and_duplicates_nothing(
    rig: tuple[System, ServiceInstance[PostgresService]],
) -> None:
    system, pg = rig
    edge = system.edges[EDGE]
    streaming(edge)

    during_outage(edge, pg.stop, pg.start, 5)
    streaming(edge)
    assert_all_stored_once(system, edge)


def test_system_edge_sigkilled_and_restarted_loses_and_duplicates_nothing(system: System) -> None:
    """Central is frozen (SIGSTOP) around the kill, so the edge dies with unconfirmed events in its outbox."""
    edge = system.edges[EDGE]
    streaming(edge)
    system.central.pause(True)
    try:
        streaming(edge, 1)
        edge.kill()
    finally:
        system.central.pause(False)
    last = made(edge)
    in_outbox = edge.outbox_seqs()
    assert in_outbox, "the edge had no unconfirmed event when it was killed"
    written = in_outbox | edge.logged_seqs()  # committed before the kill
    unused = set() if (CAMERA, last) in written else {(CAMERA, last)}  # taken, never written
    print(f"\nedge killed with {len(in_outbox)} events in its outbox")
    edge.start()
    wait_until(lambda: edge.readyz() == 200, 90, f"the restarted edge ready (log: {edge.log})")
    streaming(edge)
    assert_all_stored_once(system, edge, unused)
