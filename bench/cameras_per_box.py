"""Cameras per box: the largest number of 720p cameras one edge box keeps in real time, today's daemon
(motion gating off, one frame at a time, every model on onnxruntime) against the new defaults (motion
gating on, frames of all cameras batched, the backend probe), on the same streams, in one run.

    python -m bench.cameras_per_box [--counts 2,4,6,8,12,16] [--seconds 40] [--fps-cap 5]

Streams: H.264 files at 1280x720 and 15 fps, encoded with Debian's ffmpeg (libx264) from real material: a
real photo (blurred into a still scene, no face of its own) with sensor noise and compression, and people
from the registry's public-domain photos (demo/sample_faces.py) walking in and out, present about 20 % of
the time (one 2 s visit every 10 s). One stream in six has the lights switched on half-way. Each clip starts
its visits at another time, so the cameras do not all see people at once.

Each configuration runs `facegate edge run` with N cameras reading the clips in real time (`realtime: true`,
`fps_cap` frames processed per second per camera) for one clip's length, with a private Mosquitto. Reported:
- real time: every camera processed at least 95 % of its configured rate and under 1 % of the frames offered
  to the pipeline were dropped (a newer frame replaced them before processing), both counted over the
  measured window only (from the metrics before and after it, so start-up is left out);
- CPU per camera: the daemon's CPU time over the run's wall time, divided by N (1.0 = one core);
- visits recognised out of visits shown, read from the events in the outbox (an enrolled person's visit
  counts when a `recognized` event names them; another's when an `unknown` event comes).
The largest N in real time is the figure per configuration.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from bench.daemon_fps import enroll
from common.messages import Event, decode
from common.pipeline.backends import cpu_model
from common.pipeline.pipeline import FacePipeline, PipelineSettings
from demo.sample_faces import fetch_samples
from demo.videos import visit_frame

WIDTH, HEIGHT, FPS = 1280, 720, 15.0
VISIT_S, PERIOD_S = 2.0, 10.0  # one visit of 2 s every 10 s: people present 20 % of the time
ENROLLED = "obama"  # enrolled from obama.jpg; visits show obama2.jpg and obama3.jpg
VISITORS = ("obama2", "biden", "obama3", "grace_hopper")  # who walks by, in turn
CLIPS = 6


@dataclass(frozen=True)
class Run:
    mode: str
    cameras: int
    real_time: bool
    rate_share: float  # the slowest camera's processed frames / its configured rate
    dropped_share: float
    cpu_per_camera: float
    recognised: int
    shown: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scene(photo: Path) -> np.ndarray:
    image = cv2.resize(read_image(photo), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(image, (0, 0), 20), dtype=np.uint8)


def encode_clip(
    path: Path, backdrop: np.ndarray, photos: dict[str, np.ndarray], index: int, seconds: float
) -> None:
    """One clip: visits of VISITORS in turn, starting at another offset per clip; clip 0 gets the lights
    switched on half-way. Written through ffmpeg's libx264 (OpenCV's wheel cannot write H.264)."""
    rng = np.random.default_rng(index)
    noise = [rng.normal(0, 3.0, backdrop.shape).astype(np.int16) for _ in range(8)]
    lit = np.clip(backdrop.astype(np.float32) * 1.35 + 8, 0, 255).astype(np.uint8)
    command = [
        "ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
        "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-g", "30", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    ffmpeg = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert ffmpeg.stdin is not None
    offset = index * PERIOD_S / CLIPS + 1.0
    for number in range(round(seconds * FPS)):
        t = number / FPS
        base = lit if index == 0 and t >= seconds / 2 else backdrop
        phase = (t - offset) % PERIOD_S
        if t >= offset and phase < VISIT_S:
            visitor = VISITORS[(int((t - offset) // PERIOD_S) + index) % len(VISITORS)]
            base = visit_frame(base, photos[visitor], phase / VISIT_S)
        frame = np.clip(base.astype(np.int16) + noise[number % len(noise)], 0, 255).astype(np.uint8)
        ffmpeg.stdin.write(frame.tobytes())
    ffmpeg.stdin.close()
    if ffmpeg.wait() != 0:
        raise SystemExit(f"ffmpeg could not encode {path}")


def visits_shown(index: int, seconds: float) -> list[str]:
    """Who each complete visit of clip `index` shows."""
    offset, shown, k = index * PERIOD_S / CLIPS + 1.0, [], 0
    while offset + k * PERIOD_S + VISIT_S <= seconds:
        shown.append(VISITORS[(k + index) % len(VISITORS)])
        k += 1
    return shown


def metric(text: str, name: str, camera: str | None = None) -> float:
    total = 0.0
    for match in re.finditer(rf"^{name}(?:{{([^}}]*)}})? ([0-9.e+-]+)$", text, re.M):
        if camera is None or f'camera="{camera}"' in (match.group(1) or ""):
            total += float(match.group(2))
    return total


def run_daemon(
    work: Path, clips: list[Path], count: int, mode: str, *, seconds: float, fps_cap: float
) -> Run:
    run_dir = work / f"{mode}-{count}"
    run_dir.mkdir()
    shutil.copy(work / "gallery.staff.db", run_dir / "gallery.staff.db")
    port, health = free_port(), free_port()
    (run_dir / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(run_dir / "mosquitto.conf")], stderr=subprocess.DEVNULL)
    cameras = [
        {"id": f"cam{i}", "source": str(clips[i % len(clips)]), "fps_cap": fps_cap, "motion": mode == "on"}
        for i in range(count)
    ]
    device = {
        "site": "bench",
        "edge": "e1",
        "broker": {"url": f"mqtt://127.0.0.1:{port}"},
        "central": {"url": "http://127.0.0.1:9", "key_id": "e1", "secret": "x"},
        "cameras": cameras,
        "gallery": {"ids": ["staff"], "db_path": str(run_dir / "gallery.db")},
        "outbox": {"path": str(run_dir / "outbox.db")},
        "health": {"host": "127.0.0.1", "port": health},
        "log_level": "warning",
        "batching": {"max_frames": 1, "workers": 1} if mode == "off" else {},  # today: one frame at a time
    }
    if mode == "off":  # today's daemon also ran every model on onnxruntime (no backend probe) and
        device["pipeline"] = {"runtime": {"backend": "onnxruntime"}}  # embedded every face it tracked
        device["tracker"] = {"reembed_s": 0.0}
    (run_dir / "device.yaml").write_text(yaml.safe_dump(device))
    facegate = str(Path(sys.executable).parent / "facegate")
    daemon = subprocess.Popen([facegate, "edge", "run", "--config", str(run_dir / "device.yaml")])
    url = f"http://127.0.0.1:{health}/metrics"
    try:
        wait_streaming(url, daemon, count)
        before = urllib.request.urlopen(url, timeout=5).read().decode()
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(seconds)
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        cpu, wall = cpu_seconds(daemon.pid) - cpu0, time.monotonic() - t0
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        broker.terminate()

    def counted(name: str, camera: str) -> float:  # during the measured window, not at start-up
        return metric(text, name, camera) - metric(before, name, camera)

    processed = [counted("facegate_edge_frames_total", f"cam{i}") for i in range(count)]
    dropped = sum(counted("facegate_edge_camera_dropped_frames", f"cam{i}") for i in range(count))
    rate_share = min(processed) / (fps_cap * wall)
    dropped_share = dropped / max(1.0, dropped + sum(processed))
    recognised, shown = score_visits(run_dir / "outbox.db", clips, count, wall)
    return Run(
        mode,
        count,
        rate_share >= 0.95 and dropped_share < 0.01,
        rate_share,
        dropped_share,
        cpu / wall / count,
        recognised,
        shown,
    )


def wait_streaming(url: str, daemon: subprocess.Popen[bytes], count: int) -> None:
    """Until every camera streams and has processed a frame (the clips then start from their beginning:
    the readers open the files at start-up)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.2)
            continue
        if metric(text, "facegate_edge_camera_streaming") >= count and all(
            metric(text, "facegate_edge_frames_total", f"cam{i}") > 0 for i in range(count)
        ):
            return
        time.sleep(0.2)
    raise SystemExit("the daemon did not start streaming every camera")


def score_visits(outbox_path: Path, clips: list[Path], count: int, seconds: float) -> tuple[int, int]:
    """(visits recognised, visits shown) over every camera, from the events left in the outbox."""
    with closing(sqlite3.connect(outbox_path)) as db:  # every event, sent or not (no central confirms them)
        events = [decode(bytes(payload), Event) for (payload,) in db.execute("SELECT payload FROM outbox")]
    recognised = shown = 0
    for i in range(count):
        visitors = visits_shown(i % len(clips), seconds)
        mine = [e for e in events if e.camera == f"cam{i}" and e.kind != "changed"]
        known = sum(1 for v in visitors if v.startswith(ENROLLED))
        hits = sum(1 for e in mine if e.kind == "recognized" and e.person_id == ENROLLED)
        unknowns = sum(1 for e in mine if e.kind == "unknown")
        recognised += min(hits, known) + min(unknowns, len(visitors) - known)
        shown += len(visitors)
    return recognised, shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="2,4,6,8,12,16", help="camera counts to try, in increasing order")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of each clip and of each run")
    parser.add_argument("--fps-cap", type=float, default=5.0, help="frames processed per second per camera")
    parser.add_argument(
        "--modes",
        default="off,on",
        help="off: today's daemon (no motion gating, no batching, onnxruntime); on: the new defaults",
    )
    args = parser.parse_args()
    for tool in ("mosquitto", "ffmpeg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/ensure-services.sh installs it)")
    samples = fetch_samples()
    pipeline = FacePipeline.load(PipelineSettings())
    with tempfile.TemporaryDirectory(prefix="facegate-cameras-") as tmp:
        work = Path(tmp)
        enroll(pipeline, work / "gallery.staff.db", {ENROLLED: samples[ENROLLED].path})
        backdrop = scene(samples["astronaut"].path)
        photos = {name: read_image(samples[name].path) for name in VISITORS}
        clips = []
        for index in range(CLIPS):
            clips.append(work / f"clip{index}.mp4")
            encode_clip(clips[-1], backdrop, photos, index, args.seconds + 15.0)
        print(
            f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; clips: {CLIPS} x H.264 {WIDTH}x{HEIGHT} "
            f"{FPS:.0f} fps; {args.fps_cap:g} frames/s processed per camera; {args.seconds:g} s per run"
        )
        keep = max(1, round(FPS / args.fps_cap))
        every, capped = decode_cores(clips[1]), decode_cores(clips[1], keep)
        print(
            f"  decoding alone (OpenCV FFmpeg), cores per camera: every frame read {every:.3f}; "
            f"1 in {keep} read, the rest only grabbed (the fps cap) {capped:.3f}"
        )
        best: dict[str, int] = {}
        for mode in args.modes.split(","):
            for count in (int(c) for c in args.counts.split(",")):
                result = run_daemon(work, clips, count, mode, seconds=args.seconds, fps_cap=args.fps_cap)
                print(report(result))
                if not result.real_time:
                    break
                best[mode] = count
        print("largest camera count in real time: " + ", ".join(f"motion {m}: {n}" for m, n in best.items()))
        if "on" in best and "off" in best:
            print(f"  on / off: {best['on'] / best['off']:.1f}x")
    return 0


def decode_cores(clip: Path, keep_every: int = 1) -> float:
    """Cores one camera's decoding alone takes at FPS: OpenCV's FFmpeg reading the clip as fast as it can,
    every `keep_every`-th frame converted into an image (read), the others only grabbed, as a camera
    source does for the frames its fps cap drops."""
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    frames, started = 0, time.process_time()
    while capture.read()[0] if frames % keep_every == 0 else capture.grab():
        frames += 1
    capture.release()
    return (time.process_time() - started) / max(1, frames) * FPS


def report(run: Run) -> str:
    return (
        f"  motion {run.mode:3}  {run.cameras:2} cameras  real time {'yes' if run.real_time else 'no ':3}  "
        f"slowest camera {run.rate_share:5.0%} of its rate  dropped {run.dropped_share:5.1%}  "
        f"CPU/camera {run.cpu_per_camera:5.2f} cores  visits {run.recognised}/{run.shown}"
    )


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return np.asarray(image, dtype=np.uint8)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
