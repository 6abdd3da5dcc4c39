"""The edge daemon as a real process, on a real video of real faces, against a real Mosquitto, with a
test consumer standing in for central."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from common.pipeline.pipeline import FacePipeline
from common.sample_faces import SamplePhoto
from tests.central_standin import CentralStandIn
from tests.edge_device import device_file, enroll, free_port
from tests.services.factories import MosquittoFactory
from tests.videos import RtspServer, compose_visit_video

FACEGATE = str(Path(sys.executable).parent / "facegate")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [FACEGATE, "edge", "run", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read())


@pytest.fixture
def visits(tmp_path: Path, samples: dict[str, SamplePhoto]) -> Path:
    """Obama (enrolled from another photo), then Biden (not enrolled), then Obama again."""
    photos = [samples["obama2"].path, samples["biden"].path, samples["obama3"].path]
    return compose_visit_video(tmp_path / "visits.avi", photos, seconds_each=2.5, fps=10.0, gap_s=3.0)


def test_edge_daemon_real_video_one_event_per_visit_with_crops(
    tmp_path: Path,
    visits: Path,
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
    mosquitto_factory: MosquittoFactory,
    model_dir: Path,
) -> None:
    broker = mosquitto_factory()
    state = tmp_path / "state"
    enroll(pipeline, state / "gallery.staff.db", {"obama": samples["obama"].path})
    health = free_port()
    config = device_file(
        tmp_path / "device.yaml",
        broker_port=broker.endpoint.port,
        state=state,
        model_dir=model_dir,
        health_port=health,
        cameras=[{"id": "door", "source": str(visits), "fps_cap": 10.0}],
    )
    log = tmp_path / "daemon.log"
    with CentralStandIn(broker.endpoint) as central:
        daemon = start_daemon(config, log)
        try:
            wait_until(lambda: _up(health), 60, "the health endpoint")
            assert get_json(f"http://127.0.0.1:{health}/healthz")[0] == 200
            wait_until(
                lambda: len([e for e in central.events() if e.kind != "changed"]) >= 3,
                60,
                f"three visit events (log: {log})",
            )
            time.sleep(2.0)  # anything more would be a duplicate per frame
            events = central.events()
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    recognized = [e for e in events if e.kind == "recognized"]
    unknown = [e for e in events if e.kind == "unknown"]
    assert [e.person_id for e in recognized] == ["obama", "obama"], [(e.kind, e.person_id) for e in events]
    assert len(unknown) == 1
    assert all(e.crop_jpeg and e.crop_jpeg.startswith(b"\xff\xd8") for e in recognized + unknown)
    assert all(e.site == "s1" and e.edge == "e1" and e.camera == "door" for e in events)
    assert central.in_order_per_camera()
    assert recognized[0].score >= recognized[0].threshold and recognized[0].gallery == "staff"
    with sqlite3.connect(state / "outbox.db") as db:  # every event confirmed: nothing left behind
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def _up(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _outbox_ids(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[0] for row in db.execute("SELECT id FROM outbox")}


def test_edge_daemon_sigkill_mid_stream_loses_nothing_in_outbox(
    tmp_path: Path,
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
    mosquitto_factory: MosquittoFactory,
    model_dir: Path,
) -> None:
    broker = mosquitto_factory()
    state = tmp_path / "state"
    enroll(pipeline, state / "gallery.staff.db", {"obama": samples["obama"].path})
    photos = [samples[n].path for n in ("obama2", "biden", "obama3", "grace_hopper", "obama", "astronaut")]
    video = compose_visit_video(tmp_path / "long.avi", photos, seconds_each=2.0, fps=10.0, gap_s=2.0)
    health = free_port()
    config = device_file(
        tmp_path / "device.yaml",
        broker_port=broker.endpoint.port,
        state=state,
        model_dir=model_dir,
        health_port=health,
        cameras=[{"id": "door", "source": str(video), "fps_cap": 10.0}],
    )
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)  # no consumer yet: events stay unconfirmed in the outbox
    try:
        wait_until(
            lambda: (state / "outbox.db").exists() and len(_outbox_ids(state / "outbox.db")) >= 2,
            90,
            f"two events in the outbox (log: {log})",
        )
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    held = _outbox_ids(state / "outbox.db")
    assert len(held) >= 2
    with CentralStandIn(broker.endpoint) as central:
        again = start_daemon(config, log)
        try:
            wait_until(lambda: held <= {e.id for e in central.events()}, 60, "the events held at the kill")
            wait_until(lambda: not _outbox_ids(state / "outbox.db") & held, 30, "their receipts")
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(timeout=30) == 0
        assert central.in_order_per_camera()


def test_edge_daemon_bad_messages_counted_and_erase_command_applies(
    tmp_path: Path,
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
    mosquitto_factory: MosquittoFactory,
    model_dir: Path,
) -> None:
    broker = mosquitto_factory()
    state = tmp_path / "state"
    enroll(
        pipeline, state / "gallery.staff.db", {"obama": samples["obama"].path, "biden": samples["biden"].path}
    )
    health = free_port()
    config = device_file(
        tmp_path / "device.yaml",
        broker_port=broker.endpoint.port,
        state=state,
        model_dir=model_dir,
        health_port=health,
        cameras=[{"id": "missing", "source": str(tmp_path / "no-such-video.mp4")}],
    )
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    metrics = f"http://127.0.0.1:{health}/metrics"
    try:
        wait_until(lambda: _up(health), 60, "the health endpoint")
        with CentralStandIn(broker.endpoint, client_id="commander") as central:
            for topic in (
                "facegate/v1/s1/e1/commands",
                "facegate/v1/galleries/staff/changes",
                "facegate/v1/galleries/staff/manifest",
            ):
                central.client.publish(topic, b"{not json", qos=1)
            central.client.publish(
                "facegate/v1/s1/e1/commands",
                b'{"schema":"facegate.command/1","action":"erase_person","person_id":"biden"}',
            )
            wait_until(
                lambda: 'facegate_edge_gallery_templates{gallery="staff"} 1.0' in _text(metrics),
                20,
                "the erase command",
            )
        text = _text(metrics)
        assert 'facegate_edge_bad_messages_total{reason="malformed",topic_kind="commands"} 1.0' in text
        assert 'reason="malformed_changes"' in text and 'reason="malformed_manifest"' in text
        assert 'facegate_edge_camera_errors_total{camera="missing"}' in text
        status, body = get_json(f"http://127.0.0.1:{health}/readyz")
        assert status == 503 and body["checks"] == {"models": True, "cameras": False, "broker": True}
        assert daemon.poll() is None  # still serving
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0


def test_edge_run_bad_config_exits_3_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "device.yaml"
    config.write_text(
        "site: s1\nedge: e1\nbroker: {url: mqtt://127.0.0.1:1}\n"
        "central: {url: http://x, key_id: k, secret: s}\ncameras: [{id: a, source: /x.mp4, fpscap: 2}]\n"
    )
    proc = subprocess.run(
        [FACEGATE, "edge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert "cameras[0]" in proc.stderr and "fpscap" in proc.stderr


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode())


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="needs ffmpeg (scripts/ensure-services.sh installs it)"
)
def test_edge_daemon_rtsp_camera_lost_and_back_other_camera_keeps_recognising(
    tmp_path: Path,
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
    mosquitto_factory: MosquittoFactory,
    model_dir: Path,
) -> None:
    broker = mosquitto_factory()
    state = tmp_path / "state"
    enroll(pipeline, state / "gallery.staff.db", {"obama": samples["obama"].path})
    door = compose_visit_video(
        tmp_path / "door.avi", [samples["obama2"].path], seconds_each=1.5, fps=10.0, gap_s=1.0
    )
    clip = compose_visit_video(tmp_path / "lobby.mp4", [samples["biden"].path], seconds_each=2.0, fps=10.0)
    (tmp_path / "rtsp").mkdir()
    server = RtspServer(tmp_path / "rtsp")
    health = free_port()
    config = device_file(
        tmp_path / "device.yaml",
        broker_port=broker.endpoint.port,
        state=state,
        model_dir=model_dir,
        health_port=health,
        tracker={"timeout_s": 0.8},
        cameras=[
            {"id": "door", "source": str(door), "loop": True, "fps_cap": 10.0},
            {"id": "lobby", "source": server.url, "kind": "stream", "fps_cap": 10.0},
        ],
    )
    metrics = f"http://127.0.0.1:{health}/metrics"
    log = tmp_path / "daemon.log"
    try:
        server.start_ffmpeg(clip)
        server.wait_live(10.0)
        with CentralStandIn(broker.endpoint) as central:
            daemon = start_daemon(config, log)
            try:
                wait_until(
                    lambda: _up(health) and get_json(f"http://127.0.0.1:{health}/readyz")[0] == 200,
                    60,
                    f"both cameras streaming (log: {log})",
                )
                server.kill_ffmpeg()
                wait_until(
                    lambda: 'facegate_edge_camera_streaming{camera="lobby"} 0.0' in _text(metrics),
                    30,
                    "the lobby camera to notice the loss",
                )
                during = len([e for e in central.events() if e.camera == "door"])
                wait_until(
                    lambda: len([e for e in central.events() if e.camera == "door"]) > during,
                    30,
                    "door events while the lobby camera is down",
                )
                server.start_ffmpeg(clip)
                wait_until(
                    lambda: 'facegate_edge_camera_streaming{camera="lobby"} 1.0' in _text(metrics),
                    60,
                    "the lobby camera to come back",
                )
                assert metric_value(_text(metrics), 'facegate_edge_camera_reconnects{camera="lobby"}') >= 1
                assert daemon.poll() is None
            finally:
                daemon.send_signal(signal.SIGTERM)
                assert daemon.wait(timeout=30) == 0
    finally:
        server.close()
    door_events = [e for e in central.events() if e.camera == "door"]
    assert door_events and all(e.person_id == "obama" for e in door_events if e.kind == "recognized")


def metric_value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in the metrics")


def test_edge_daemon_broker_stopped_and_restarted_every_event_arrives_once_in_order(
    tmp_path: Path,
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
    mosquitto_factory: MosquittoFactory,
    model_dir: Path,
) -> None:
    broker = mosquitto_factory()
    state = tmp_path / "state"
    enroll(pipeline, state / "gallery.staff.db", {"obama": samples["obama"].path})
    door = compose_visit_video(
        tmp_path / "door.avi",
        [samples["obama2"].path, samples["biden"].path],
        seconds_each=1.2,
        fps=10.0,
        gap_s=1.0,
    )
    health = free_port()
    config = device_file(
        tmp_path / "device.yaml",
        broker_port=broker.endpoint.port,
        state=state,
        model_dir=model_dir,
        health_port=health,
        tracker={"timeout_s": 0.8},
        cameras=[{"id": "door", "source": str(door), "loop": True, "fps_cap": 10.0}],
    )
    metrics = f"http://127.0.0.1:{health}/metrics"
    log = tmp_path / "daemon.log"
    with CentralStandIn(broker.endpoint) as central:
        daemon = start_daemon(config, log)
        try:
            wait_until(lambda: len(central.events()) >= 2, 60, f"events before the outage (log: {log})")
            broker.stop()
            written = metric_sum(_text(metrics), "facegate_edge_events_total")
            wait_until(
                lambda: metric_sum(_text(metrics), "facegate_edge_events_total") >= written + 2,
                60,
                "events recognised while the broker is down",
            )
            broker.start()
            written = metric_sum(_text(metrics), "facegate_edge_events_total")
            wait_until(lambda: len(central.events()) >= written, 60, "every event written so far")
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
            total = written
        finally:
            if daemon.poll() is None:
                daemon.kill()
        time.sleep(1.0)
        events = central.events()
    assert len(events) >= total
    assert central.in_order_per_camera()
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_edge_daemon_reload_command_adds_camera_and_applies_threshold(
    tmp_path: Path,
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
    mosquitto_factory: MosquittoFactory,
    model_dir: Path,
) -> None:
    broker = mosquitto_factory()
    state = tmp_path / "state"
    enroll(pipeline, state / "gallery.staff.db", {"obama": samples["obama"].path})
    door = compose_visit_video(
        tmp_path / "door.avi", [samples["obama2"].path], seconds_each=1.2, fps=10.0, gap_s=1.0
    )
    health = free_port()

    def write(cameras: list[dict[str, object]], **extra: object) -> Path:
        return device_file(
            tmp_path / "device.yaml",
            broker_port=broker.endpoint.port,
            state=state,
            model_dir=model_dir,
            health_port=health,
            cameras=cameras,
            tracker={"timeout_s": 0.8},
            **extra,
        )

    camera: dict[str, object] = {"id": "door", "source": str(door), "loop": True, "fps_cap": 10.0}
    config = write([camera])
    metrics = f"http://127.0.0.1:{health}/metrics"
    log = tmp_path / "daemon.log"
    with CentralStandIn(broker.endpoint) as central:
        daemon = start_daemon(config, log)
        try:
            wait_until(
                lambda: any(e.kind == "recognized" for e in central.events()), 60, f"a match (log: {log})"
            )
            write([camera, {**camera, "id": "hall"}], thresholds={"match": 0.99})
            central.client.publish(
                "facegate/v1/s1/e1/commands", b'{"schema":"facegate.command/1","action":"reload_config"}'
            )
            wait_until(
                lambda: 'facegate_edge_camera_streaming{camera="hall"} 1.0' in _text(metrics),
                30,
                "the new camera",
            )
            wait_until(
                lambda: any(e.camera == "hall" and e.kind == "unknown" for e in central.events()),
                60,
                "an unknown event under the new threshold",
            )
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
    hall = [e for e in central.events() if e.camera == "hall"]
    assert all(e.threshold == 0.99 and e.kind == "unknown" for e in hall)
    assert central.in_order_per_camera()
