"""Per-camera face tracker: links faces across frames, votes each track's identity, one event per visit.

Linking. Each face of a frame is compared with every live track: the IoU of its box with the track's last
box, and the cosine of its embedding with the track's recent and best embeddings. A pair can link when
the IoU reaches `iou_threshold` or the cosine reaches `embedding_similarity` (a face that moved far
between frames); never when both have embeddings and the cosine is below `split_similarity` (another
person at the same place). Pairs link greedily by IoU + cosine, one face per track; a face left over
starts a track.

Voting. The caller's matcher gives each embedded face an `Identity`: a person with its score, or no
match (person None). With `vote="score_sum"` a match adds its score to that person's tally and a
no-match adds `unknown_weight` to the unknown tally; with `vote="majority"` every vote adds 1. A face
without an identity (refused by the quality gate) does not vote. The identity of a track is the largest
tally (a tie goes to a person over unknown). A face whose detection score is under `min_score` can join
a track but not start one.

Events. A track is confirmed once it has `min_frames` votes and a face of quality `min_quality`: it emits
one event, "recognized" (a person) or "unknown". Later it emits "changed" only when another identity's
tally passes the announced one's by `change_margin`. A track no face joined for `timeout_s` ends and is
forgotten; the same person coming back later is a new track and a new event. All times come from the
frames, so tests drive the clock. Crops follow `CropSettings` (edge/inference/crops.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from common.embedding import cosine
from common.pipeline.face import Embedding, Face
from common.pipeline.image import Frame as Image
from edge.camera.sources import Frame
from edge.inference.crops import CropSettings, encode_jpeg, face_region, wants_crop

EventKind = Literal["recognized", "unknown", "changed"]
VoteRule = Literal["score_sum", "majority"]
Box = tuple[float, float, float, float]
QUALITY_STEP = 0.1  # a face this much better than its track's best is embedded even between re-embeddings


class IdentityLike(Protocol):
    """What the tracker needs from a match result: a person (None: no match) and its score."""

    @property
    def person_id(self) -> str | None: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Identity:
    person_id: str | None
    score: float


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    min_frames: int = 3  # votes before a track is confirmed
    min_quality: float = 0.3  # best face quality a track needs to be confirmed
    min_score: float = 0.7  # detection score a face needs to start a track (weaker ones may extend one)
    iou_threshold: float = 0.3
    embedding_similarity: float = 0.5
    split_similarity: float = 0.2
    timeout_s: float = 2.0
    max_embeddings: int = 5  # best-quality embeddings kept per track (and as many recent ones)
    # a confirmed track's face is embedded again only this long after its last embedding (0: every face)
    reembed_s: float = 1.0
    vote: VoteRule = "score_sum"
    unknown_weight: float = 0.4  # score_sum: a no-match vote weighs like a match near the SFace threshold
    change_margin: float = 1.0
    crops: CropSettings = field(default_factory=CropSettings)


@dataclass(frozen=True, slots=True)
class TrackEvent:
    camera: str
    track_id: int
    kind: EventKind
    person_id: str | None
    score: float  # mean matcher score of the voted identity's faces
    quality: float  # best face quality of the track
    bbox: Box  # [x, y, w, h] of the best face, frame pixels
    first_seen: float  # wall clock of the track's first face
    seen_at: float  # wall clock of the frame that made the event
    frames: int  # faces linked to the track so far
    crop_jpeg: bytes | None = field(default=None, repr=False)
    embedding: Embedding | None = field(default=None, repr=False)  # the best-quality face's


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def as_box(box: NDArray[np.float32]) -> Box:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


class Track:
    """One face followed across frames: its votes, best embeddings and best crop region."""

    def __init__(self, track_id: int, frame: Frame, box: Box, max_embeddings: int) -> None:
        self.id = track_id
        self.first_seen = frame.wall
        self.last_seen = frame.monotonic
        self.box = box
        self.frames = 0
        self.votes = 0
        self.tally: dict[str | None, float] = {}
        self.scores: dict[str | None, list[float]] = {}
        self.best: list[tuple[float, Embedding]] = []  # (quality, embedding), best first
        self.recent: deque[Embedding] = deque(maxlen=max_embeddings)
        self.best_quality = -1.0
        self.best_box = box
        self.best_region: Image | None = None
        self.announced: str | None = None
        self.confirmed = False
        self.embedded_at = -float("inf")  # monotonic time of the last embedded face

    def similarity(self, embedding: Embedding | None) -> float | None:
        """The highest cosine of `embedding` with the track's embeddings; None when either has none."""
        known = [e for _, e in self.best] + list(self.recent)
        if embedding is None or not known:
            return None
        return max(cosine(embedding, e) for e in known)

    def best_embeddings(self) -> list[Embedding]:
        return [e for _, e in self.best]

    def add(self, frame: Frame, face: Face, identity: IdentityLike | None, settings: TrackerSettings) -> None:
        self.last_seen, self.box = frame.monotonic, as_box(face.detection.box)
        self.frames += 1
        if identity is None or face.embedding is None:
            return  # not embedded: it follows the track but does not vote
        person = identity.person_id
        weight = identity.score if person is not None else settings.unknown_weight
        if settings.vote == "majority":
            weight = 1.0
        self.votes += 1
        self.embedded_at = frame.monotonic
        self.tally[person] = self.tally.get(person, 0.0) + weight
        self.scores.setdefault(person, []).append(identity.score)
        self._keep(frame, face, face.embedding, settings)

    def _keep(self, frame: Frame, face: Face, embedding: Embedding, settings: TrackerSettings) -> None:
        quality = face.quality.score
        self.recent.append(embedding)
        self.best.append((quality, embedding))
        self.best.sort(key=lambda item: -item[0])
        del self.best[settings.max_embeddings :]
        if quality > self.best_quality:
            self.best_quality, self.best_box = quality, self.box
            if settings.crops.policy != "none":
                self.best_region = face_region(frame.image, face.detection.box, settings.crops.margin)

    def winner(self) -> tuple[str | None, float]:
        """The voted identity and its tally (a tie goes to a person over unknown)."""
        person = max(self.tally, key=lambda p: (self.tally[p], p is not None))
        return person, self.tally[person]

    def mean_score(self, person: str | None) -> float:
        scores = self.scores.get(person, [])
        return sum(scores) / len(scores) if scores else 0.0


class Tracker:
    """Tracks the faces of one camera; `update` once per processed frame."""

    def __init__(self, camera: str, settings: TrackerSettings = TrackerSettings()) -> None:
        self.camera = camera
        self.settings = settings
        self._tracks: dict[int, Track] = {}
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        """The live tracks, oldest first."""
        return list(self._tracks.values())

    def update(
        self, frame: Frame, faces: Sequence[Face], identities: Sequence[IdentityLike | None]
    ) -> list[TrackEvent]:
        """Link this frame's faces (with their matcher results, None for faces not embedded) to tracks;
        the events this frame causes."""
        if len(faces) != len(identities):
            raise ValueError(f"{len(faces)} faces but {len(identities)} identities")
        if frame.camera_id != self.camera:
            raise ValueError(f"a frame of camera {frame.camera_id} given to the tracker of {self.camera}")
        self.expire(frame.monotonic)
        events = []
        for face, identity, track in zip(faces, identities, self._link(faces), strict=True):
            target = track or self._start(frame, face)
            if target is None:
                continue
            target.add(frame, face, identity, self.settings)
            if (event := self._event_for(target, frame)) is not None:
                events.append(event)
        return events

    def needs_embedding(self, now: float, faces: Sequence[Face]) -> list[bool]:
        """Per face of a frame at `now` (monotonic), whether to embed it before `update`. A face is left
        unembedded only when it plainly continues one confirmed track: it overlaps that track alone (IoU
        at least `iou_threshold`), no other face of the frame overlaps the track, the track's last
        embedding is under `reembed_s` old, and the face is not clearly better (quality up by
        QUALITY_STEP) than the track's best. It then follows the track by its box without voting.
        Everything else is embedded: faces starting or near several tracks, tracks not yet confirmed,
        and each confirmed track again every `reembed_s`, so a swap of people is still caught."""
        s = self.settings
        live = [t for t in self._tracks.values() if now - t.last_seen <= s.timeout_s]
        overlaps = [
            [t for t in live if box_iou(t.box, as_box(f.detection.box)) >= s.iou_threshold] for f in faces
        ]
        claims: dict[int, int] = {}
        for tracks in overlaps:
            for t in tracks:
                claims[t.id] = claims.get(t.id, 0) + 1
        wanted = []
        for face, tracks in zip(faces, overlaps, strict=True):
            reuse = (
                s.reembed_s > 0
                and len(tracks) == 1
                and claims[tracks[0].id] == 1
                and tracks[0].confirmed
                and now - tracks[0].embedded_at < s.reembed_s
                and face.quality.score < tracks[0].best_quality + QUALITY_STEP
            )
            wanted.append(not reuse)
        return wanted

    def expire(self, now: float) -> int:
        """End the tracks no face joined for `timeout_s` before `now` (monotonic); how many ended."""
        ended = [i for i, t in self._tracks.items() if now - t.last_seen > self.settings.timeout_s]
        for track_id in ended:
            del self._tracks[track_id]
        return len(ended)

    def _start(self, frame: Frame, face: Face) -> Track | None:
        if face.detection.score < self.settings.min_score:
            return None
        track = Track(self._next_id, frame, as_box(face.detection.box), self.settings.max_embeddings)
        self._tracks[track.id] = track
        self._next_id += 1
        return track

    def _link(self, faces: Sequence[Face]) -> list[Track | None]:
        """The track each face joins (None: a new one), greedily by affinity, one face per track."""
        pairs = []
        for track in self._tracks.values():
            for index, face in enumerate(faces):
                affinity = self._affinity(track, face)
                if affinity is not None:
                    pairs.append((affinity, index, track))
        links: list[Track | None] = [None] * len(faces)
        taken: set[int] = set()
        for _, index, track in sorted(pairs, key=lambda p: -p[0]):
            if links[index] is None and track.id not in taken:
                links[index] = track
                taken.add(track.id)
        return links

    def _affinity(self, track: Track, face: Face) -> float | None:
        s = self.settings
        iou = box_iou(track.box, as_box(face.detection.box))
        similarity = track.similarity(face.embedding)
        if similarity is not None and similarity < s.split_similarity:
            return None
        if iou >= s.iou_threshold or (similarity is not None and similarity >= s.embedding_similarity):
            return iou + (similarity or 0.0)
        return None

    def _event_for(self, track: Track, frame: Frame) -> TrackEvent | None:
        s = self.settings
        if track.votes < s.min_frames or track.best_quality < s.min_quality:
            return None
        person, tally = track.winner()
        if not track.confirmed:
            track.confirmed, track.announced = True, person
            return self._event(track, "recognized" if person else "unknown", frame)
        if person != track.announced and tally >= track.tally.get(track.announced, 0.0) + s.change_margin:
            track.announced = person
            return self._event(track, "changed", frame)
        return None

    def _event(self, track: Track, kind: EventKind, frame: Frame) -> TrackEvent:
        person, crops = track.announced, self.settings.crops
        crop = None
        if track.best_region is not None and wants_crop(crops.policy, person):
            crop = encode_jpeg(track.best_region, crops.max_side, crops.max_bytes, crops.jpeg_quality)
        return TrackEvent(
            self.camera, track.id, kind, person, track.mean_score(person), track.best_quality,
            track.best_box, track.first_seen, frame.wall, track.frames, crop,
            track.best[0][1] if track.best and crops.embedding else None,
        )  # fmt: skip
