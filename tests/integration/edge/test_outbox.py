"""The outbox on real SQLite files (order, resends, receipts, bounds, SIGKILL, threads) and its benchmark."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common.errors import ConfigError
from devtools.services import MosquittoFactory
from edge.bench import outbox as bench_outbox
from edge.delivery.outbox import Outbox, OutboxSettings, OutboxStats
from tests.support.paths import REPO


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _open(tmp_path: Path, clock: Clock | None = None, **settings: object) -> Outbox:
    return Outbox(tmp_path / "outbox.db", OutboxSettings(**settings), clock=clock or Clock()).open()  # type: ignore[arg-type]


def _put(outbox: Outbox, n: int, *, camera: str = "cam1", size: int = 10, start: int = 0) -> list[str]:
    ids = [f"ev-{camera}-{i:04d}" for i in range(start, start + n)]
    for event_id in ids:
        assert outbox.put(event_id, camera, "facegate/v1/s/e/events", b"x" * size)
    return ids


def test_outbox_next_batch_returns_pending_rows_in_insertion_order(tmp_path: Path) -> None:
    with _open(tmp_path) as outbox:
        first = _put(outbox, 3, camera="a")
        second = _put(outbox, 2, camera="b")
        rows = outbox.next_batch(10)
    assert [row.id for row in rows] == first + second
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)
    assert rows[0].state == "pending" and rows[0].attempts == 0 and rows[0].payload == b"x" * 10


def test_outbox_next_batch_respects_limit(tmp_path: Path) -> None:
    with _open(tmp_path) as outbox:
        ids = _put(outbox, 5)
        assert [row.id for row in outbox.next_batch(2)] == ids[:2]


def test_outbox_sent_rows_wait_resend_after_then_come_back_in_order(tmp_path: Path) -> None:
    clock = Clock()
    with _open(tmp_path, clock, resend_after_s=5.0) as outbox:
        ids = _put(outbox, 4)
        assert outbox.mark_sent(ids[:2]) == 2
        assert [row.id for row in outbox.next_batch(10)] == ids[2:]
        clock.now += 5.0
        rows = outbox.next_batch(10)
    assert [row.id for row in rows] == ids
    assert [row.state for row in rows] == ["sent", "sent", "pending", "pending"]


def test_outbox_mark_sent_again_counts_resends_and_attempts(tmp_path: Path) -> None:
    with _open(tmp_path) as outbox:
        ids = _put(outbox, 3)
        outbox.mark_sent(ids)
        outbox.mark_sent(ids[:1])
        stats = outbox.stats()
        outbox.resend_all()
        attempts = [row.attempts for row in outbox.next_batch(10)]
    assert stats.resends == 1
    assert stats.unconfirmed == 3
    assert attempts == [2, 1, 1]


def test_outbox_resend_all_makes_every_sent_row_due_now(tmp_path: Path) -> None:
    with _open(tmp_path, resend_after_s=3600.0) as outbox:
        ids = _put(outbox, 3)
        outbox.mark_sent(ids[:2])
        assert outbox.resend_all() == 2
        assert [row.id for row in outbox.next_batch(10)] == ids


def test_outbox_confirm_deletes_rows_and_ignores_unknown_ids(tmp_path: Path) -> None:
    with _open(tmp_path) as outbox:
        ids = _put(outbox, 3, size=7)
        outbox.mark_sent(ids)
        assert outbox.confirm([ids[0], "no-such-event", ids[2]]) == 2
        assert outbox.confirm(["no-such-event"]) == 0
        assert [row.id for row in outbox.next_batch(10)] == []
        assert outbox.stats() == OutboxStats(backlog=1, unconfirmed=1, bytes=7, resends=0, drops=0)


def test_outbox_put_same_event_id_twice_keeps_one_row(tmp_path: Path) -> None:
    with _open(tmp_path) as outbox:
        assert outbox.put("ev-1", "cam", "t", b"a")
        assert not outbox.put("ev-1", "cam", "t", b"b")
        assert [row.payload for row in outbox.next_batch(10)] == [b"a"]


def test_outbox_full_by_rows_drop_oldest_evicts_and_counts(tmp_path: Path) -> None:
    with _open(tmp_path, max_rows=3) as outbox:
        ids = _put(outbox, 5)
        assert [row.id for row in outbox.next_batch(10)] == ids[2:]
        assert outbox.stats().drops == 2
        assert outbox.stats().backlog == 3


def test_outbox_full_by_bytes_drop_oldest_evicts_enough_rows(tmp_path: Path) -> None:
    with _open(tmp_path, max_bytes=100) as outbox:
        ids = _put(outbox, 4, size=30)  # 120 bytes > 100: the first row goes
        assert outbox.put("big", "cam1", "t", b"y" * 70)  # needs 70 of the 90 held: two more go
        assert [row.id for row in outbox.next_batch(10)] == [ids[3], "big"]
        assert outbox.stats().bytes == 100
        assert outbox.stats().drops == 3


def test_outbox_full_drop_newest_refuses_and_counts(tmp_path: Path) -> None:
    with _open(tmp_path, max_rows=2, when_full="drop_newest") as outbox:
        ids = _put(outbox, 2)
        assert not outbox.put("late", "cam1", "t", b"z")
        assert [row.id for row in outbox.next_batch(10)] == ids
        assert outbox.stats().drops == 1


def test_outbox_payload_larger_than_max_bytes_is_refused_without_evicting(tmp_path: Path) -> None:
    with _open(tmp_path, max_bytes=50) as outbox:
        ids = _put(outbox, 2, size=10)
        assert not outbox.put("huge", "cam1", "t", b"h" * 51)
        assert [row.id for row in outbox.next_batch(10)] == ids
        assert outbox.stats().drops == 1


def test_outbox_counters_and_rows_persist_across_reopen(tmp_path: Path) -> None:
    with _open(tmp_path, max_rows=2) as outbox:
        ids = _put(outbox, 3, size=4)
        outbox.mark_sent(ids[1:2])
        outbox.mark_sent(ids[1:2])
    with _open(tmp_path, max_rows=2) as reopened:
        assert reopened.stats() == OutboxStats(backlog=2, unconfirmed=1, bytes=8, resends=1, drops=1)
        assert [row.id for row in reopened.next_batch(10)] == [ids[2]]


@pytest.mark.parametrize(("mode", "value"), [("FULL", 2), ("NORMAL", 1)])
def test_outbox_open_sets_wal_and_configured_synchronous(tmp_path: Path, mode: str, value: int) -> None:
    with _open(tmp_path, synchronous=mode) as outbox:
        db = outbox._db
        assert db is not None
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA synchronous").fetchone() == (value,)


@pytest.mark.parametrize(
    "settings", [{"synchronous": "OFF"}, {"when_full": "block"}, {"max_rows": 0}, {"resend_after_s": 0}]
)
def test_outbox_settings_invalid_value_raises_config_error(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OutboxSettings(**settings)  # type: ignore[arg-type]


def test_outbox_concurrent_puts_from_threads_all_kept(tmp_path: Path) -> None:
    with _open(tmp_path, synchronous="NORMAL") as outbox:

        def write(camera: str) -> None:
            _put(outbox, 50, camera=camera, size=3)

        threads = [threading.Thread(target=write, args=(f"cam{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rows = outbox.next_batch(1000)
        assert outbox.stats().backlog == 200 and outbox.stats().bytes == 600
    for camera in ("cam0", "cam1", "cam2", "cam3"):
        assert [row.id for row in rows if row.camera == camera] == [f"ev-{camera}-{i:04d}" for i in range(50)]


_WRITER = """
import sys
from edge.delivery.outbox import Outbox, OutboxSettings
outbox = Outbox(sys.argv[1], OutboxSettings(synchronous=sys.argv[2])).open()
for i in range(1_000_000):
    event_id = f"ev-{i:07d}"
    outbox.put(event_id, f"cam{i % 3}", "facegate/v1/s/e/events", event_id.encode() * 20)
    if i % 7 == 0:
        outbox.mark_sent([event_id])
    print(event_id, flush=True)
"""


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
def test_outbox_writer_sigkilled_keeps_every_committed_row(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "outbox.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), mode], stdout=subprocess.PIPE, text=True, env=env
    )
    assert writer.stdout is not None
    committed = [writer.stdout.readline().strip() for _ in range(200)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    committed += [line.strip() for line in writer.stdout if line.strip()]  # printed before it died
    assert writer.returncode == -signal.SIGKILL
    with Outbox(path, OutboxSettings(resend_after_s=3600)).open() as outbox:
        stats = outbox.stats()
        outbox.resend_all()
        rows = {row.id: row for row in outbox.next_batch(1_000_000)}
    assert set(committed) <= set(rows)
    assert all(rows[event_id].payload == event_id.encode() * 20 for event_id in committed)
    assert all(rows[f"ev-{i:07d}"].attempts == 1 for i in range(0, len(committed), 7))
    assert stats.backlog == len(rows)
    assert stats.unconfirmed == sum(row.attempts for row in rows.values())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_bench_outbox_json_reports_bare_and_outbox_rates(
    mosquitto_factory: MosquittoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = mosquitto_factory(persistence=False).endpoint
    parser = argparse.ArgumentParser()
    bench_outbox.register(parser.add_subparsers())
    args = parser.parse_args(
        ["outbox", "--port", str(broker.port), "--events", "40", "--batch", "10", "--json"]
    )
    assert args.handler(args) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["events"] == 40 and figures["bare_paho"]["events_per_s"] > 0
    for mode in ("outbox_full", "outbox_normal"):
        assert figures[mode]["events_per_s"] > 0
        assert figures[mode]["drained_s"] >= figures[mode]["delivered_s"]
