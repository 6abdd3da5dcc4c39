"""One camera's frames through the pipeline, matcher and tracker into the outbox: the region of
interest, full-frame boxes, the gallery and threshold events carry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.messages import Event, decode
from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from edge.assembly import tracker_settings
from edge.camera.sources import Frame
from edge.config.schema import BrokerSettings, Camera, CentralSettings, DeviceConfig
from edge.delivery.outbox import Outbox
from edge.delivery.sequence import Sequences
from edge.gallery.cache import Gallery
from edge.gallery.matcher import Matcher
from edge.inference.frames import FrameProcessor, GalleryMatcher
from edge.inference.tracker import Tracker
from edge.ops.metrics import EdgeMetrics
from tests.support.edge_device import enroll
from tests.support.faces import read

DEVICE = DeviceConfig(
    site="s1",
    edge="e1",
    broker=BrokerSettings(url="mqtt://127.0.0.1"),
    central=CentralSettings(url="http://c", key_id="k", secret="x"),
)


@pytest.fixture
def parts(
    tmp_path: Path, pipeline: FacePipeline, samples: dict[str, SamplePhoto]
) -> Iterator[tuple[Outbox, Sequences, list[GalleryMatcher]]]:
    enroll(pipeline, tmp_path / "gallery.staff.db", {"obama": samples["obama"].path})
    gallery = Gallery.open(tmp_path / "gallery.staff.db", "staff", "sface-2021dec")
    outbox = Outbox(tmp_path / "outbox.db").open()
    sequences = Sequences(tmp_path / "seq.db")
    yield outbox, sequences, [GalleryMatcher("staff", Matcher(gallery, 0.363, 0.05), gallery.version)]
    outbox.close()
    sequences.close()
    gallery.close()


def wide_frame(samples: dict[str, SamplePhoto]) -> np.ndarray:
    """Obama's photo (another than the enrolled one) on the right half of a wide grey frame."""
    photo = read(samples["obama2"].path)
    scale = 600 / photo.shape[0]
    small = np.asarray(cv2.resize(photo, None, fx=scale, fy=scale), dtype=np.uint8)
    frame = np.full((600, 1600, 3), 110, dtype=np.uint8)
    frame[:, 1600 - small.shape[1] :] = small
    return frame


def run(processor: FrameProcessor, image: np.ndarray, matchers: list[GalleryMatcher]) -> list[Event]:
    events: list[Event] = []
    for n in range(4):
        frame = Frame("door", n, time.monotonic() + n * 0.1, time.time(), image)
        events += processor.process(frame, matchers)
    return events


def processor(camera: Camera, pipeline: FacePipeline, outbox: Outbox, sequences: Sequences) -> FrameProcessor:
    return FrameProcessor(
        camera,
        site="s1",
        edge="e1",
        pipeline=pipeline,
        tracker=Tracker("door", tracker_settings(DEVICE)),
        outbox=outbox,
        sequences=sequences,
        metrics=EdgeMetrics(),
    )


def test_frames_roi_on_the_face_gives_full_frame_box_and_gallery(
    parts: tuple[Outbox, Sequences, list[GalleryMatcher]],
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
) -> None:
    outbox, sequences, matchers = parts
    image = wide_frame(samples)
    cam = Camera(id="door", source="/x.mp4", kind="video", roi=(0.5, 0.0, 0.5, 1.0))
    (event,) = run(processor(cam, pipeline, outbox, sequences), image, matchers)
    assert event.kind == "recognized" and event.person_id == "obama"
    assert event.gallery == "staff" and event.gallery_version == 1 and event.threshold == 0.363
    assert event.bbox[0] > 800  # in full-frame pixels, on the right half
    (row,) = outbox.next_batch(10)
    assert decode(row.payload, Event) == event and row.topic == "facegate/v1/s1/e1/events"
    assert event.seq == 1


def test_frames_roi_off_the_face_gives_no_event(
    parts: tuple[Outbox, Sequences, list[GalleryMatcher]],
    pipeline: FacePipeline,
    samples: dict[str, SamplePhoto],
) -> None:
    outbox, sequences, matchers = parts
    cam = Camera(id="door", source="/x.mp4", kind="video", roi=(0.0, 0.0, 0.45, 1.0))
    assert run(processor(cam, pipeline, outbox, sequences), wide_frame(samples), matchers) == []
    assert outbox.stats().backlog == 0
