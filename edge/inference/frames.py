"""One camera frame through the pipeline, the matcher and the tracker, into the outbox."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from common.messages import Event, FaceEmbedding, embedding_bytes, encode
from common.pipeline.face import Face
from common.pipeline.pipeline import FacePipeline, Timings
from common.topics import edge_topic
from edge.camera.motion import Box, FloatBox, MotionDetector, grow, union
from edge.camera.sources import Frame
from edge.config.schema import BatchSettings, Camera, motion_settings
from edge.delivery.outbox import Outbox
from edge.delivery.sequence import Sequences
from edge.gallery.matcher import Match, Matcher
from edge.inference.batch import DetectRequest, detect_and_embed
from edge.inference.tracker import Tracker, TrackEvent
from edge.ops.metrics import EdgeMetrics

log = logging.getLogger(__name__)
DEFAULT_BATCH = BatchSettings()
MAX_CROP_SKEW_S = 0.1  # a main-stream frame further in time from the detected one is not used: a walking
# face moves tens of pixels in 0.1 s, so an older frame would be aligned on landmarks that no longer fit it
TRACK_PADDING = 1.0  # a tracked face is looked for within its own size around its last box (at 5 fps a
# walking face moves less than that between frames; a faster one is in the region that moved anyway)


__all__ = ["FrameProcessor", "GalleryMatcher", "best_match", "process_frames"]


@dataclass(frozen=True, slots=True)
class Planned:
    """A frame ready for the models: its image (the region of interest), where to detect in it (None:
    nowhere, motion gated it out), and the frame and image faces are cropped from with the offset of
    that image in its frame: the main stream's, for a camera with a detection stream."""

    frame: Frame
    image: np.ndarray
    region: Box | None
    crop_frame: Frame
    crop_image: np.ndarray
    offset: tuple[float, float]


def process_frames(
    items: list[tuple[FrameProcessor, Frame]],
    matchers: list[GalleryMatcher],
    settings: BatchSettings = DEFAULT_BATCH,
) -> list[list[Event]]:
    """Frames of several cameras (one processor each, all on one pipeline) through the models together;
    per frame, the events it caused, as each camera's `process` gives them one at a time."""
    if not items:
        return []
    pipeline = items[0][0].pipeline
    planned = [processor.plan(frame) for processor, frame in items]
    wanted = [i for i, p in enumerate(planned) if p.region is not None]
    requests = [  # the crop image only when it is another stream's
        DetectRequest(
            planned[i].image,
            r,
            items[i][0].camera.detect_size,
            None if planned[i].crop_image is planned[i].image else planned[i].crop_image,
            items[i][0].select_for(planned[i].frame),
        )
        for i in wanted
        if (r := planned[i].region)
    ]
    timings = Timings()
    found = detect_and_embed(pipeline, requests, settings, timings) if requests else []
    faces: list[list[Face]] = [[] for _ in items]
    for i, f in zip(wanted, found, strict=True):
        faces[i] = f
    return [
        processor.finish(p, f, matchers, timings)
        for (processor, _), p, f in zip(items, planned, faces, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class GalleryMatcher:
    """A followed gallery and the matcher over it."""

    gallery_id: str
    matcher: Matcher
    version: int


def best_match(
    matchers: list[GalleryMatcher], vectors: np.ndarray
) -> list[tuple[Match, GalleryMatcher | None]]:
    """Per embedding, the best decision over every followed gallery (a match beats an unknown)."""
    if not matchers:
        return [(Match(None, 0.0, None, "empty_gallery"), None) for _ in range(len(vectors))]
    best: list[tuple[Match, GalleryMatcher | None]] = []
    per_gallery = [(m, m.matcher.match_batch(vectors)) for m in matchers]
    for i in range(len(vectors)):
        choices = [(results[i], m) for m, results in per_gallery]
        matched = [c for c in choices if c[0].person_id is not None]
        pool = matched or choices
        best.append(max(pool, key=lambda c: c[0].score))
    return best


class FrameProcessor:
    """Runs frames of one camera: detect, embed, match, track, write events to the outbox."""

    def __init__(
        self,
        camera: Camera,
        *,
        site: str,
        edge: str,
        pipeline: FacePipeline,
        tracker: Tracker,
        outbox: Outbox,
        sequences: Sequences,
        metrics: EdgeMetrics,
        crops: Callable[[float], Frame | None] | None = None,
    ) -> None:
        self.camera, self.site, self.edge = camera, site, edge
        self.pipeline, self.tracker, self.outbox, self.sequences = pipeline, tracker, outbox, sequences
        self.metrics = metrics
        self.crops = crops  # the main stream's frame nearest a monotonic time (detect_source cameras)
        self.topic = edge_topic(site, edge, "events")
        self.person_gallery: dict[str, GalleryMatcher] = {}  # where each person was last matched
        self.recent: deque[tuple[float, float]] = deque(maxlen=300)  # (done at, capture-to-done seconds)
        settings = motion_settings(camera.motion)
        self.motion = MotionDetector(settings) if settings.enabled else None
        self.moved: deque[bool] = deque(maxlen=100)  # whether each of the last frames had motion
        self.seen = False  # whether the last frame detected had a face

    def process(self, frame: Frame, matchers: list[GalleryMatcher]) -> list[Event]:
        """The events this frame caused, already durable in the outbox."""
        return process_frames([(self, frame)], matchers)[0]

    def plan(self, frame: Frame) -> Planned:
        """The region of interest, and where motion says to detect in it (counted when gated out)."""
        image, offset = self._roi(frame.image)
        crop_frame = self.crops(frame.monotonic) if self.crops is not None else None
        crop_image = image
        if crop_frame is not None and abs(crop_frame.monotonic - frame.monotonic) > MAX_CROP_SKEW_S:
            crop_frame = None  # the main stream stalled: crop from the detection stream instead
        if crop_frame is not None:
            crop_image, offset = self._roi(crop_frame.image)
        region = self._detect_region(image, crop_image)
        cam = self.camera.id
        if region is None:
            self.metrics.frames_gated.labels(camera=cam).inc()
        else:
            whole = region == (0, 0, image.shape[1], image.shape[0])
            self.metrics.detection_runs.labels(camera=cam, region="frame" if whole else "motion").inc()
        return Planned(frame, image, region, crop_frame or frame, crop_image, offset)

    def finish(
        self, planned: Planned, faces: list[Face], matchers: list[GalleryMatcher], timings: Timings
    ) -> list[Event]:
        """Match and track the frame's faces; write the events to the outbox."""
        cam, m, frame = self.camera.id, self.metrics, planned.frame
        self.seen = bool(faces)
        if planned.region is not None:
            for stage, seconds in timings.seconds.items():
                m.stage_latency.labels(camera=cam, stage=stage).observe(seconds)
        started = time.perf_counter()
        embedded = [i for i, f in enumerate(faces) if f.embedding is not None]
        identities: list[Match | None] = [None] * len(faces)
        if embedded:
            vectors = np.stack([v for i in embedded if (v := faces[i].embedding) is not None])
            for i, (match, gallery) in zip(embedded, best_match(matchers, vectors), strict=True):
                identities[i] = match
                if match.person_id is not None and gallery is not None:
                    self.person_gallery[match.person_id] = gallery
                (m.matches if match.person_id else m.unknowns).labels(camera=cam).inc()
        m.stage_latency.labels(camera=cam, stage="match").observe(time.perf_counter() - started)
        started = time.perf_counter()
        track_events = self.tracker.update(
            self._shifted(planned.crop_frame, planned.crop_image), faces, identities
        )
        m.stage_latency.labels(camera=cam, stage="track").observe(time.perf_counter() - started)
        m.frames.labels(camera=cam).inc()
        m.faces.labels(camera=cam).inc(len(faces))
        reused = sum(1 for f in faces if f.quality.accepted and f.embedding is None and f.crop is not None)
        if reused and self.pipeline.embedder is not None:
            m.embeddings_skipped.labels(camera=cam).inc(reused)
        events = [self._write(te, planned.offset, matchers) for te in track_events]
        done = time.monotonic()
        m.frame_latency.labels(camera=cam).observe(max(0.0, done - frame.monotonic))
        self.recent.append((done, max(0.0, done - frame.monotonic)))
        return [e for e in events if e is not None]

    def select_for(self, frame: Frame) -> Callable[[list[Face]], list[bool]]:
        """Which faces of `frame` to embed: those the tracker cannot follow by their box alone."""
        return lambda faces: self.tracker.needs_embedding(frame.monotonic, faces)

    def _detect_region(self, image: np.ndarray, crop_image: np.ndarray) -> Box | None:
        """Where to run the detector on this frame; None: nowhere. While a face is being tracked (found on
        the last frame detected), around every live track (grown by TRACK_PADDING of the face's size on
        each side) and what moved, so a person standing still keeps their track; a track whose face was
        not found last time waits for its timeout without forcing the detector."""
        height, width = image.shape[:2]
        if self.motion is None:
            return 0, 0, width, height
        motion = self.motion.update(image)
        self.moved.append(motion.moved)
        tracks = self.tracker.tracks
        if not (self.seen and tracks):
            return motion.box
        settings = self.motion.settings
        sx, sy = crop_image.shape[1] / width, crop_image.shape[0] / height  # track boxes: crop pixels
        boxes: list[FloatBox] = [
            grow((x / sx, y / sy, w / sx, h / sy), (height, width), settings, TRACK_PADDING)
            for x, y, w, h in (t.box for t in tracks)
        ]
        if motion.box is not None:
            boxes.append(motion.box)
        return grow(union(boxes), (height, width), settings, padding=0.0)

    def motion_share(self) -> float | None:
        """The share of recent frames with motion; None when gating is off or nothing was seen yet."""
        if self.motion is None or not self.moved:
            return None
        return sum(self.moved) / len(self.moved)

    def fps(self, window_s: float = 10.0) -> float:
        """Frames processed per second over the last `window_s` seconds."""
        now = time.monotonic()
        times = [t for t, _ in self.recent if now - t <= window_s]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    def latencies(self) -> list[float]:
        return [latency for _, latency in self.recent]

    def _roi(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        if self.camera.roi is None:
            return image, (0.0, 0.0)
        height, width = image.shape[:2]
        x, y, w, h = self.camera.roi
        x0, y0 = round(x * width), round(y * height)
        x1, y1 = min(width, x0 + max(1, round(w * width))), min(height, y0 + max(1, round(h * height)))
        return np.ascontiguousarray(image[y0:y1, x0:x1]), (float(x0), float(y0))

    @staticmethod
    def _shifted(frame: Frame, image: np.ndarray) -> Frame:
        if image is frame.image:
            return frame
        return Frame(frame.camera_id, frame.number, frame.monotonic, frame.wall, image)

    def _embedding(self, te: TrackEvent) -> FaceEmbedding | None:
        embedder = self.pipeline.embedder
        if te.embedding is None or embedder is None:
            return None
        return FaceEmbedding(model=embedder.model_id, vector=embedding_bytes(te.embedding))

    def _write(
        self, te: TrackEvent, offset: tuple[float, float], matchers: list[GalleryMatcher]
    ) -> Event | None:
        gm = self.person_gallery.get(te.person_id) if te.person_id else None
        gm = gm or (matchers[0] if matchers else None)
        x, y, w, h = te.bbox
        event = Event(
            site=self.site,
            edge=self.edge,
            camera=self.camera.id,
            seq=self.sequences.next(self.camera.id),
            track_id=te.track_id,
            kind=te.kind,
            person_id=te.person_id,
            score=round(te.score, 5),
            threshold=gm.matcher.threshold if gm else self.pipeline.threshold,
            quality=round(te.quality, 4),
            bbox=(x + offset[0], y + offset[1], w, h),
            model=self.pipeline.embedder.model_id if self.pipeline.embedder else "",
            gallery=gm.gallery_id if gm else None,
            gallery_version=gm.version if gm else 0,
            first_seen=datetime.fromtimestamp(te.first_seen, UTC),
            crop_jpeg=te.crop_jpeg,
            embedding=self._embedding(te),
        )
        if not self.outbox.put(event.id, self.camera.id, self.topic, encode(event)):
            log.error("outbox_full_event_dropped", extra={"camera": self.camera.id, "event": event.id})
            return None
        self.metrics.events.labels(camera=self.camera.id, kind=te.kind).inc()
        log.info(
            "event",
            extra={
                "camera": self.camera.id,
                "kind": te.kind,
                "person": te.person_id,
                "track": te.track_id,
                "seq": event.seq,
                "score": round(te.score, 3),
            },
        )
        return event
