"""Camera sources on real media: composed video files, an image folder, RTSP and HTTP streams from ffmpeg."""

from __future__ import annotations

import itertools
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from common.backoff import Backoff
from demo.sample_faces import SamplePhoto
from edge.camera.pacing import Arrivals, RateCap, grab_only
from edge.camera.sources import (
    CameraSource,
    Frame,
    SourceKind,
    SourceSettings,
    SourceState,
    StateChange,
    infer_kind,
)
from tests.support.videos import RtspServer, compose_visit_video, load_photo

FPS = 25.0
CLIP_FRAMES = 55  # 0.2 s gap, 0.8 s visit, 0.2 s gap, 0.8 s visit, 0.2 s gap at 25 fps
NO_FFMPEG = "needs the ffmpeg command (scripts/ensure-services.sh installs it)"

S = SourceState


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, samples: dict[str, SamplePhoto]) -> Path:
    photos = [samples["obama"].path, samples["grace_hopper"].path]
    path = tmp_path_factory.mktemp("clip") / "visits.mp4"
    return compose_visit_video(path, photos, 0.8, FPS, (320, 240), gap_s=0.2)


@pytest.fixture
def started() -> Iterator[Callable[[CameraSource], CameraSource]]:
    """Starts sources and stops them all at the end of the test, whatever happened."""
    sources: list[CameraSource] = []

    def start(source: CameraSource) -> CameraSource:
        sources.append(source)
        source.start()
        return source

    yield start
    for source in sources:
        source.stop()


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def take_all(source: CameraSource, timeout: float = 3.0) -> list[Frame]:
    frames = []
    while (frame := source.latest(timeout)) is not None:
        frames.append(frame)
    return frames


def logged(caplog: pytest.LogCaptureFixture, event: str, camera: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == event and getattr(r, "camera", None) == camera]


def test_source_file_streams_at_native_fps_then_ends(
    clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    changes: list[StateChange] = []
    source = started(CameraSource("cam-1", str(clip), SourceKind.VIDEO, on_state=changes.append))
    frames = take_all(source)
    assert [f.number for f in frames] == list(range(CLIP_FRAMES))
    assert all(f.camera_id == "cam-1" and f.image.shape == (240, 320, 3) for f in frames)
    span = frames[-1].monotonic - frames[0].monotonic
    assert (CLIP_FRAMES - 1) / FPS * 0.9 < span < (CLIP_FRAMES - 1) / FPS * 1.5
    assert abs((frames[-1].wall - frames[0].wall) - span) < 0.1
    assert [(c.old, c.new) for c in changes] == [(S.STOPPED, S.CONNECTING), (S.CONNECTING, S.STREAMING),
                                                 (S.STREAMING, S.ENDED)]  # fmt: skip
    assert source.state is S.ENDED and source.stats.dropped == 0


def test_source_looping_file_goes_on_past_its_end(
    clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    changes: list[StateChange] = []
    settings = SourceSettings(loop=True, realtime=False)
    source = started(CameraSource("cam-1", str(clip), SourceKind.VIDEO, settings, changes.append))
    assert wait_for(lambda: source.stats.frames > 2 * CLIP_FRAMES, 10.0)
    frame = source.latest(1.0)
    assert frame is not None and frame.number >= 2 * CLIP_FRAMES and source.state is S.STREAMING  # 3rd pass
    source.stop()
    assert [c.new for c in changes] == [S.CONNECTING, S.STREAMING, S.STOPPED]


def test_source_slow_consumer_gets_latest_frame_and_drops_are_counted(
    clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource("cam-1", str(clip), SourceKind.VIDEO, SourceSettings(loop=True)))
    numbers, ages = [], []
    for _ in range(5):
        time.sleep(0.25)  # a pipeline slower than the camera
        frame = source.latest(1.0)
        assert frame is not None
        numbers.append(frame.number)
        ages.append(time.monotonic() - frame.monotonic)
    assert all(later - earlier >= 4 for earlier, later in itertools.pairwise(numbers))
    assert max(ages) < 0.2  # the frame taken is the newest one, not the head of a backlog
    assert source.stats.dropped >= 4 * 4


def test_source_fps_cap_skips_frames_at_the_reader(
    clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(
        CameraSource("cam-1", str(clip), SourceKind.VIDEO, SourceSettings(fps_cap=5.0, loop=True))
    )
    frames, deadline = [], time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if (frame := source.latest(0.5)) is not None:
            frames.append(frame)
    stats = source.stats
    assert 6 <= len(frames) <= 9 and stats.frames == len(frames) and stats.dropped == 0
    assert stats.skipped >= 3 * len(frames)
    assert stats.grabbed >= 3 * len(frames) - 3  # most skipped frames were never converted


def test_source_with_history_keeps_its_last_frames_for_nearest(
    clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    source = started(CameraSource("cam-1", str(clip), SourceKind.VIDEO, SourceSettings(history=4, loop=True)))
    deadline = time.monotonic() + 3.0
    while source.stats.frames < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    now = time.monotonic()
    newest, oldest = source.nearest(now), source.nearest(0.0)
    assert newest is not None and oldest is not None and 0 <= now - newest.monotonic < 0.5
    assert newest.number - oldest.number <= 4  # only the last frames are kept
    assert source.latest(0.05) is None  # a crop stream's frames are not in the mailbox


def test_rate_cap_holds_the_average_rate_of_a_faster_source() -> None:
    cap = RateCap(10.0)
    allowed = sum(cap.allow(i / 30.0) for i in range(300))  # 10 s at 30 fps
    assert 99 <= allowed <= 101


@pytest.mark.parametrize(("jitter", "wasted"), [(0.0, 3), (0.02, 12)])
def test_rate_cap_grabs_only_the_frames_it_drops(jitter: float, wasted: int) -> None:
    cap, arrivals, rng = RateCap(5.0), Arrivals(), np.random.default_rng(1)
    converted = allowed = 0
    now = 0.0  # a live 15 fps stream: the reader decides right after the previous frame came
    for i in range(150):  # 10 s
        due = i / 15.0 + float(rng.uniform(-jitter, jitter))
        skip = grab_only(cap, arrivals, now)
        now = max(now, due)
        arrivals.seen(now)
        if not skip:
            converted += 1
            allowed += cap.allow(now)
    assert 48 <= allowed <= 51  # the cap's rate is kept
    assert converted - allowed <= wasted  # of the 100 frames dropped, few were converted into images


def test_backoff_delay_grows_by_factor_up_to_max() -> None:
    backoff = Backoff(1.0, 8.0, factor=2.0, jitter=False)  # as a camera source builds it
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_infer_kind_from_scheme_or_path(tmp_path: Path) -> None:
    assert infer_kind("rtsp://user:pw@10.0.0.5/stream1") is SourceKind.STREAM
    assert infer_kind("https://cam.example/video.ts") is SourceKind.STREAM
    assert infer_kind(str(tmp_path)) is SourceKind.FOLDER
    assert infer_kind(str(tmp_path / "door.mp4")) is SourceKind.VIDEO


def test_source_missing_file_backs_off_and_retries(
    tmp_path: Path, started: Callable[[CameraSource], CameraSource], caplog: pytest.LogCaptureFixture
) -> None:
    settings = SourceSettings(backoff_min_s=0.05, backoff_max_s=0.2)
    source = started(CameraSource("cam-gone", str(tmp_path / "none.mp4"), SourceKind.VIDEO, settings))
    assert wait_for(lambda: source.stats.reconnects >= 3, 3.0)
    assert source.state in {S.BACKING_OFF, S.CONNECTING} and source.stats.errors >= 3
    assert logged(caplog, "source_file_missing", "cam-gone")
    assert source.latest(0.05) is None


def test_source_text_file_named_mp4_fails_without_retrying(
    tmp_path: Path, started: Callable[[CameraSource], CameraSource], caplog: pytest.LogCaptureFixture
) -> None:
    fake = tmp_path / "door.mp4"
    fake.write_text("this is not a video\n")
    source = started(
        CameraSource(
            "cam-text", str(fake), SourceKind.VIDEO, SourceSettings(backoff_min_s=0.05, backoff_max_s=0.2)
        )
    )
    assert wait_for(lambda: source.state is S.FAILED, 3.0)
    time.sleep(0.2)
    assert source.stats.errors == 1 and source.stats.reconnects == 0
    assert [r.levelno for r in logged(caplog, "source_not_a_video", "cam-text")] == [logging.ERROR]


def test_source_unreachable_stream_backs_off(
    started: Callable[[CameraSource], CameraSource], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"rtsp://127.0.0.1:{probe.getsockname()[1]}/cam"
    settings = SourceSettings(backoff_min_s=0.05, backoff_max_s=0.2, open_timeout_s=1.0, read_timeout_s=1.0)
    source = started(CameraSource("cam-off", url, SourceKind.STREAM, settings))
    assert wait_for(lambda: source.stats.reconnects >= 2, 5.0)
    assert source.state in {S.BACKING_OFF, S.CONNECTING}
    assert logged(caplog, "source_connect_failed", "cam-off")


def test_source_folder_reads_new_files_once_and_skips_corrupt(
    tmp_path: Path, samples: dict[str, SamplePhoto], started: Callable[[CameraSource], CameraSource]
) -> None:
    def drop(name: str, data: bytes) -> None:  # written under a hidden name, then renamed: atomic
        (tmp_path / f".{name}").write_bytes(data)
        (tmp_path / f".{name}").rename(tmp_path / name)

    drop("a.jpg", samples["obama"].path.read_bytes())
    settings = SourceSettings(poll_s=0.05, settle_s=0.0)
    source = started(CameraSource("cam-dir", str(tmp_path), SourceKind.FOLDER, settings))
    first = source.latest(3.0)
    assert first is not None and first.image.shape == load_photo(samples["obama"].path).shape
    drop("b.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    drop("c.jpg", samples["grace_hopper"].path.read_bytes())
    second = source.latest(3.0)
    assert second is not None and np.array_equal(second.image, load_photo(samples["grace_hopper"].path))
    assert source.latest(0.3) is None  # each image once
    stats = source.stats
    assert (stats.frames, stats.unreadable, stats.errors) == (2, 1, 1) and source.state is S.STREAMING


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason=NO_FFMPEG)
def test_source_rtsp_stream_recovers_after_server_restart_while_file_camera_runs(
    clip: Path, tmp_path: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    server = RtspServer(tmp_path)
    try:
        server.start_ffmpeg(clip)
        server.wait_live(5.0)
        changes: list[StateChange] = []
        settings = SourceSettings(
            open_timeout_s=5.0, read_timeout_s=1.0, backoff_min_s=0.2, backoff_max_s=0.5
        )
        stream = started(CameraSource("cam-rtsp", server.url, SourceKind.STREAM, settings, changes.append))
        other = started(CameraSource("cam-file", str(clip), SourceKind.VIDEO, SourceSettings(loop=True)))
        before = stream.latest(8.0)
        assert before is not None and before.image.shape == (240, 320, 3)
        counts = [other.stats.frames]

        server.kill_ffmpeg()
        assert wait_for(lambda: stream.state is S.BACKING_OFF, 5.0)
        assert wait_for(lambda: stream.stats.reconnects >= 2, 5.0)  # attempts while the camera is down
        counts.append(other.stats.frames)

        server.start_ffmpeg(clip)
        assert wait_for(lambda: stream.state is S.STREAMING, 10.0)
        after = stream.latest(5.0)
        assert after is not None and after.number > before.number
        counts.append(other.stats.frames)
    finally:
        server.close()
    states = [c.new for c in changes]
    assert states[:2] == [S.CONNECTING, S.STREAMING] and states[-1] is S.STREAMING
    assert S.BACKING_OFF in states and states.count(S.CONNECTING) >= 3
    assert counts[0] < counts[1] < counts[2] and other.state is S.STREAMING


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason=NO_FFMPEG)
def test_source_http_stream_delivers_frames(
    clip: Path, started: Callable[[CameraSource], CameraSource]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cam"
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-c:v", "libx264",
           "-preset", "ultrafast", "-g", "8", "-f", "mpegts", "-listen", "1", url]  # fmt: skip
    server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        settings = SourceSettings(
            open_timeout_s=5.0, read_timeout_s=2.0, backoff_min_s=0.05, backoff_max_s=0.2
        )
        source = started(CameraSource("cam-http", url, SourceKind.STREAM, settings))
        frames = [f for _ in range(5) if (f := source.latest(5.0)) is not None]
        assert len(frames) == 5 and frames[-1].image.shape == (240, 320, 3)
        assert source.state is S.STREAMING
    finally:
        server.kill()
        server.wait(timeout=10)
