"""The tracker on synthetic faces (time driven by frame timestamps) and on real faces in a composed video."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.embedding import cosine, l2_normalize
from common.pipeline.face import Detection, Embedding, Face, Quality
from common.pipeline.image import Frame as Image
from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from edge.camera.sources import Frame
from edge.inference.crops import CropPolicy, CropSettings, encode_jpeg, face_region
from edge.inference.tracker import Identity, Tracker, TrackerSettings, TrackEvent
from tests.support.videos import compose_visit_video, load_photo

WALL0 = 1_700_000_000.0
BACKDROP = np.full((480, 640, 3), 90, np.uint8)
Step = tuple[float, Sequence[tuple[Face, Identity | None]]]  # a frame time and its faces


def person_vector(seed: int) -> Embedding:
    return l2_normalize(np.random.default_rng(seed).normal(size=128).astype(np.float32))


OBAMA, BIDEN = person_vector(1), person_vector(2)


def sighting(person: Embedding, jitter: int) -> Embedding:
    """The person's embedding as one frame sees it: a little noise around the person's vector."""
    seed = [jitter, round(abs(float(person[0])) * 1e6)]  # different noise for different people
    noise = np.random.default_rng(seed).normal(scale=0.02, size=128).astype(np.float32)
    return l2_normalize(person + noise)


def face(box: Sequence[float], embedding: Embedding | None, quality: float = 0.8, score: float = 0.9) -> Face:
    detection = Detection(np.array(box, np.float32), np.zeros((5, 2), np.float32), score)
    return Face(detection, Quality(quality, 100.0, 100.0, 0.0, 0.0, 0.0, score), embedding, "test")


def frame_at(t: float, image: Image | None = None) -> Frame:
    return Frame("cam-1", round(t * 10), t, WALL0 + t, BACKDROP if image is None else image)


def run(tracker: Tracker, steps: Sequence[Step]) -> list[TrackEvent]:
    events = []
    for t, pairs in steps:
        events += tracker.update(frame_at(t), [f for f, _ in pairs], [i for _, i in pairs])
    return events


def visit(
    person: Embedding, identity: Identity | None, start: float, frames: int, x0: float = 100
) -> list[Step]:
    """A face walking right at 10 fps: box moves 4 px a frame."""
    return [
        (start + n / 10, [(face((x0 + 4 * n, 120, 100, 120), sighting(person, n)), identity)])
        for n in range(frames)
    ]


def test_tracker_one_visit_of_a_known_face_emits_one_recognized_event() -> None:
    events = run(Tracker("cam-1"), visit(OBAMA, Identity("obama", 0.6), 0.0, 30))
    assert len(events) == 1
    event = events[0]
    assert (event.kind, event.person_id, event.camera, event.track_id) == ("recognized", "obama", "cam-1", 1)
    assert event.score == pytest.approx(0.6) and event.quality == pytest.approx(0.8)
    assert event.first_seen == WALL0 and event.frames == 3


def test_tracker_identity_change_emits_one_changed_event() -> None:
    steps = visit(OBAMA, Identity("obama", 0.6), 0.0, 5) + visit(OBAMA, Identity("biden", 0.6), 0.5, 20, 120)
    events = run(Tracker("cam-1"), steps)
    assert [(e.kind, e.person_id, e.track_id) for e in events] == [
        ("recognized", "obama", 1),
        ("changed", "biden", 1),
    ]


def test_tracker_no_match_emits_unknown_event() -> None:
    events = run(Tracker("cam-1"), visit(BIDEN, Identity(None, 0.21), 0.0, 20))
    assert [(e.kind, e.person_id) for e in events] == [("unknown", None)]
    assert events[0].score == pytest.approx(0.21)


def test_tracker_timeout_ends_track_and_next_visit_emits_new_event() -> None:
    tracker = Tracker("cam-1", TrackerSettings(timeout_s=2.0))
    events = run(tracker, visit(OBAMA, Identity("obama", 0.6), 0.0, 10))
    assert tracker.expire(0.9 + 2.5) == 1 and tracker.tracks == []
    events += run(tracker, visit(OBAMA, Identity("obama", 0.6), 3.5, 10))
    assert [(e.kind, e.track_id) for e in events] == [("recognized", 1), ("recognized", 2)]


def test_tracker_short_gap_keeps_the_track_and_emits_nothing_new() -> None:
    tracker = Tracker("cam-1", TrackerSettings(timeout_s=2.0))
    steps = visit(OBAMA, Identity("obama", 0.6), 0.0, 10) + visit(OBAMA, Identity("obama", 0.6), 2.5, 10, 136)
    assert [e.track_id for e in run(tracker, steps)] == [1]


def test_tracker_two_faces_in_one_frame_make_two_tracks() -> None:
    steps: list[Step] = []
    for n in range(10):
        left = (face((60 + 3 * n, 100, 90, 110), sighting(OBAMA, n)), Identity("obama", 0.7))
        right = (face((420 - 3 * n, 110, 90, 110), sighting(BIDEN, n + 100)), Identity("biden", 0.5))
        steps.append((n / 10, [left, right]))
    tracker = Tracker("cam-1")
    events = run(tracker, steps)
    assert sorted((e.person_id, e.track_id) for e in events) == [("biden", 2), ("obama", 1)]
    assert len(tracker.tracks) == 2 and all(len(t.best_embeddings()) == 5 for t in tracker.tracks)


def test_tracker_face_that_jumps_far_links_by_embedding() -> None:
    steps: list[Step] = [(0.0, [(face((20, 100, 90, 110), sighting(OBAMA, 1)), Identity("obama", 0.6))])]
    steps += [
        (0.1 * n, [(face((500, 300, 90, 110), sighting(OBAMA, n)), Identity("obama", 0.6))]) for n in (1, 2)
    ]
    tracker = Tracker("cam-1")
    assert [e.track_id for e in run(tracker, steps)] == [1] and len(tracker.tracks) == 1


def test_tracker_another_person_at_the_same_place_starts_a_new_track() -> None:
    steps = visit(OBAMA, Identity("obama", 0.6), 0.0, 3) + visit(BIDEN, Identity("biden", 0.6), 0.3, 3, 112)
    tracker = Tracker("cam-1")
    assert [(e.person_id, e.track_id) for e in run(tracker, steps)] == [("obama", 1), ("biden", 2)]


def test_tracker_faces_without_embedding_do_not_vote() -> None:
    steps: list[Step] = [
        (n / 10, [(face((100 + 4 * n, 120, 100, 120), None, quality=0.1), None)]) for n in range(20)
    ]
    tracker = Tracker("cam-1")
    assert run(tracker, steps) == [] and len(tracker.tracks) == 1


def test_tracker_weak_detection_cannot_start_a_track() -> None:
    weak = [face((100, 120, 100, 120), sighting(OBAMA, n), score=0.5) for n in range(5)]
    steps: list[Step] = [(n / 10, [(f, Identity("obama", 0.6))]) for n, f in enumerate(weak)]
    tracker = Tracker("cam-1")
    assert run(tracker, steps) == [] and tracker.tracks == []


@pytest.mark.parametrize(
    ("policy", "person", "has_crop"),
    [("all", "obama", True), ("all", None, True), ("unknown", "obama", False), ("unknown", None, True),
     ("none", None, False)],
)  # fmt: skip
def test_tracker_crop_policy_decides_which_events_carry_a_crop(
    policy: CropPolicy, person: str | None, has_crop: bool, samples: dict[str, SamplePhoto]
) -> None:
    photo = load_photo(samples["obama"].path)  # 910x1137, face near [371, 91, 241, 329]
    crops = CropSettings(policy=policy, max_side=128, max_bytes=6000)
    tracker = Tracker("cam-1", TrackerSettings(crops=crops))
    events: list[TrackEvent] = []
    for n in range(3):
        box = (371 + 2 * n, 91, 241, 329)
        image_frame = frame_at(n / 10, photo)
        events += tracker.update(image_frame, [face(box, sighting(OBAMA, n))], [Identity(person, 0.6)])
    assert len(events) == 1 and (events[0].crop_jpeg is not None) == has_crop
    if events[0].crop_jpeg is not None:
        assert len(events[0].crop_jpeg) <= 6000
        decoded = cv2.imdecode(np.frombuffer(events[0].crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None and max(decoded.shape[:2]) == 128


@pytest.mark.parametrize("send", [True, False])
def test_tracker_event_carries_best_embedding_unless_turned_off(
    send: bool, samples: dict[str, SamplePhoto]
) -> None:
    photo = load_photo(samples["obama"].path)
    tracker = Tracker("cam-1", TrackerSettings(crops=CropSettings(policy="none", embedding=send)))
    events: list[TrackEvent] = []
    sightings = [sighting(OBAMA, n) for n in range(3)]
    for n in range(3):
        box = (371 + 2 * n, 91, 241, 329)
        events += tracker.update(frame_at(n / 10, photo), [face(box, sightings[n])], [Identity("obama", 0.6)])
    assert len(events) == 1
    embedding = events[0].embedding
    assert (embedding is not None) == send
    if embedding is not None:  # one of the track's faces (the best-quality one)
        assert any(np.array_equal(embedding, s) for s in sightings)


def test_crop_jpeg_steps_quality_down_to_fit_max_bytes(samples: dict[str, SamplePhoto]) -> None:
    photo = load_photo(samples["grace_hopper"].path)
    region = face_region(photo, np.array([183, 120, 170, 212], np.float32), 0.4)
    assert region.shape[:2] == (int(np.ceil(120 + 212 + 84.8)) - 35, int(np.ceil(183 + 170 + 84.8)) - 98)
    loose = encode_jpeg(region, 256, 1_000_000)
    tight = encode_jpeg(region, 256, 6_000)
    assert loose is not None and tight is not None and len(tight) <= 6_000 < len(loose)
    decoded = cv2.imdecode(np.frombuffer(tight, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and max(decoded.shape[:2]) == 256
    assert encode_jpeg(region, 256, 100) is None  # nothing that small shows a face


def test_tracker_real_faces_in_composed_video_give_one_event_per_visit(
    tmp_path: Path, samples: dict[str, SamplePhoto], pipeline: FacePipeline
) -> None:
    enrolled = pipeline.process(load_photo(samples["obama2"].path))[0].embedding
    assert enrolled is not None
    photos = [samples[name].path for name in ("obama", "grace_hopper", "obama3")]
    video = compose_visit_video(tmp_path / "visits.mp4", photos, 1.0, 10.0, (640, 360), gap_s=0.6)

    def identify(faces: list[Face]) -> list[Identity | None]:
        scores = [None if f.embedding is None else cosine(f.embedding, enrolled) for f in faces]
        return [
            None if s is None else Identity("obama" if s >= pipeline.threshold else None, s) for s in scores
        ]

    tracker = Tracker("cam-1", TrackerSettings(timeout_s=0.4, crops=CropSettings(policy="all")))
    capture, events, number = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG), [], 0
    while (read := capture.read())[0]:
        frame = Frame("cam-1", number, number / 10, WALL0 + number / 10, np.asarray(read[1], np.uint8))
        faces = pipeline.process(frame.image)
        events += tracker.update(frame, faces, identify(faces))
        number += 1
    assert [(e.kind, e.person_id, e.track_id) for e in events] == [
        ("recognized", "obama", 1), ("unknown", None, 2), ("recognized", "obama", 3)]  # fmt: skip
    for event in events:
        assert event.crop_jpeg is not None and len(event.crop_jpeg) <= CropSettings().max_bytes
        assert cv2.imdecode(np.frombuffer(event.crop_jpeg, np.uint8), cv2.IMREAD_COLOR) is not None


def test_tracker_confirmed_track_is_not_embedded_again_until_reembed_s() -> None:
    tracker = Tracker("cam-1", TrackerSettings(reembed_s=1.0))
    known = Identity("obama", 0.8)
    steps = visit(OBAMA, known, 0.0, 3)  # 0.0, 0.1, 0.2: three votes confirm the track
    near = face((112, 120, 100, 120), None)  # where the walking face was last seen

    assert tracker.needs_embedding(0.0, [near]) == [True]  # no track yet
    run(tracker, steps[:2])
    assert tracker.needs_embedding(0.15, [near]) == [True]  # not confirmed yet: every face votes
    assert len(run(tracker, steps[2:])) == 1
    assert tracker.needs_embedding(0.3, [near]) == [False]  # follows the track by its box
    assert tracker.update(frame_at(0.3), [near], [None]) == []  # no vote, no new track, no event
    assert [t.frames for t in tracker.tracks] == [4]
    assert tracker.needs_embedding(1.21, [near]) == [True]  # reembed_s after the last embedding
    assert tracker.needs_embedding(0.4, [face((112, 120, 100, 120), None, quality=0.95)]) == [True]  # better
    assert tracker.needs_embedding(0.4, [near, face((120, 125, 100, 120), None)]) == [
        True,
        True,
    ]  # two near it
    assert tracker.needs_embedding(0.4, [face((400, 120, 100, 120), None)]) == [True]  # elsewhere: a new face
    assert tracker.needs_embedding(3.0, [near]) == [True]  # the track has timed out


def test_tracker_reembed_zero_embeds_every_face() -> None:
    tracker = Tracker("cam-1", TrackerSettings(reembed_s=0.0))
    run(tracker, visit(OBAMA, Identity("obama", 0.8), 0.0, 3))
    assert tracker.needs_embedding(0.3, [face((112, 120, 100, 120), None)]) == [True]
