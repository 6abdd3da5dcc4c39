"""Whole-daemon frames/s on a video, side by side with the bare pipeline on the same frames.

    python bench/daemon_fps.py [VIDEO] [--enroll NAME=PHOTO ...]

Defaults: the dev clip ../shared/data/faces-dev/short_hamilton_clip.mp4 with Miranda, Lacamoire,
Obama and Biden enrolled from their single photos (as in the dev set's README). Starts a private
Mosquitto on a free port, runs `facegate edge run` on the video looped and read as fast as possible
(`realtime: false`, no fps cap), and reads frames and events from its /metrics endpoint over a
window after warm-up.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import yaml

from common.messages import Snapshot, SnapshotTemplate, embedding_bytes
from common.pipeline.image import ImageLimits, load_image
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from edge.gallery.cache import Gallery

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces-dev"
PEOPLE = {
    "miranda": "lin-manuel-miranda.png",
    "lacamoire": "alex-lacamoire.png",
    "obama": "obama.jpg",
    "biden": "biden.jpg",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def enroll(pipeline: FacePipeline, db: Path, people: dict[str, Path]) -> None:
    assert pipeline.embedder is not None
    templates = []
    for person, photo in people.items():
        faces = pipeline.process(load_image(photo, ImageLimits()))
        face = max((f for f in faces if f.embedding is not None), key=lambda f: f.detection.area)
        assert face.embedding is not None
        templates.append(
            SnapshotTemplate(person_id=person, template_id=person, embedding=embedding_bytes(face.embedding))
        )
    snap = Snapshot(
        gallery="staff", version=1, model=pipeline.embedder.model_id, embedding_size=128, templates=templates
    )
    with Gallery.open(db, "staff", pipeline.embedder.model_id, dim=128) as gallery:
        gallery.replace_with_snapshot(snap)


def pipeline_fps(pipeline: FacePipeline, video: Path) -> tuple[float, int]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.asarray(frame, dtype=np.uint8))
    start = time.perf_counter()
    for frame in frames:
        pipeline.process(frame)
    return len(frames) / (time.perf_counter() - start), len(frames)


def metric(text: str, name: str) -> float:
    total = 0.0
    for match in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M):
        total += float(match.group(1))
    return total


def daemon_fps(work: Path, video: Path, model_dir: str, seconds: float) -> tuple[float, float, float]:
    """Frames/s the daemon sustains on the looping video, read as fast as it takes frames (the reader
    keeps only the latest frame, so the rate is the daemon's own), over `seconds` after warm-up."""
    port, health = free_port(), free_port()
    (work / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(work / "mosquitto.conf")], stderr=subprocess.DEVNULL)
    device = {
        "site": "bench",
        "edge": "e1",
        "broker": {"url": f"mqtt://127.0.0.1:{port}"},
        "central": {"url": "http://127.0.0.1:9", "key_id": "e1", "secret": "x"},
        "cameras": [{"id": "clip", "source": str(video), "loop": True, "realtime": False, "fps_cap": 1000.0}],
        "gallery": {"ids": ["staff"], "db_path": str(work / "gallery.db")},
        "outbox": {"path": str(work / "outbox.db")},
        "health": {"host": "127.0.0.1", "port": health},
        "pipeline": {"models_dir": model_dir},
        "log_level": "warning",
    }
    (work / "device.yaml").write_text(yaml.safe_dump(device))
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "facegate"), "edge", "run", "--config", str(work / "device.yaml")]
    )
    try:
        start = _sample(f"http://127.0.0.1:{health}/metrics", daemon, warm_frames=20)
        time.sleep(seconds)
        end = _sample(f"http://127.0.0.1:{health}/metrics", daemon, warm_frames=0)
        return (end[1] - start[1]) / (end[0] - start[0]), end[1] - start[1], end[2] - start[2]
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        broker.terminate()


def _sample(url: str, daemon: subprocess.Popen[bytes], warm_frames: int) -> tuple[float, float, float]:
    """(monotonic time, frames, events) once the daemon has processed `warm_frames` frames."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.2)
            continue
        frames = metric(text, "facegate_edge_frames_total")
        if frames >= warm_frames:
            return time.monotonic(), frames, metric(text, "facegate_edge_events_total")
        time.sleep(0.2)
    raise SystemExit("the daemon did not start processing the video")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEV / "short_hamilton_clip.mp4")
    parser.add_argument("--models", default="")
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring window after warm-up")
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto is not installed (scripts/ensure-services.sh installs it)")
    pipeline = FacePipeline.load(PipelineSettings(models_dir=args.models))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        enroll(pipeline, work / "gallery.staff.db", {p: DEV / f for p, f in PEOPLE.items()})
        bare, count = pipeline_fps(pipeline, args.video)
        whole, frames, events = daemon_fps(work, args.video, args.models, args.seconds)
    print(f"{args.video.name}: {count} frames")
    print(f"  bare pipeline (decoded frames, in process)  {bare:6.2f} frames/s")
    print(
        f"  whole daemon (decode, pipeline, match, track, outbox, MQTT)  {whole:6.2f} frames/s "
        f"({frames:.0f} frames, {events:.0f} events)"
    )
    print(f"  daemon / bare pipeline  {whole / bare:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
