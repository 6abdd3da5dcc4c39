"""The matcher: hits grouped by person, threshold, margin; on a real gallery (SQLite in tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from common.messages import GalleryChange, Template, embedding_bytes
from edge.gallery.cache import Gallery
from edge.gallery.index import IndexSettings
from edge.gallery.matcher import Match, Matcher

MODEL, DIM = "sface-2021dec", 32
QUERY = np.eye(DIM, dtype=np.float32)[0]


def at(cosine: float, axis: int) -> NDArray[np.float32]:
    """A unit vector at exactly `cosine` to QUERY, off along its own axis (so templates differ)."""
    eye = np.eye(DIM, dtype=np.float32)
    out: NDArray[np.float32] = cosine * eye[0] + np.float32(np.sqrt(1 - cosine**2)) * eye[axis]
    return out


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Gallery]:
    with Gallery.open(tmp_path / "g.db", "g1", MODEL, IndexSettings()) as g:
        yield g


def enroll(gallery: Gallery, people: dict[str, list[float]]) -> None:
    """Templates at the given cosines to QUERY, each on its own axis."""
    axes = iter(range(1, DIM))
    upserts = [
        Template(
            person_id=p, template_id=f"{p}{n}", model=MODEL, embedding=embedding_bytes(at(c, next(axes)))
        )
        for p, cosines in people.items()
        for n, c in enumerate(cosines)
    ]
    gallery.apply_delta(
        GalleryChange(gallery="g1", version=gallery.version + 1, model=MODEL, upserts=upserts)
    )


def test_matcher_clear_best_person_matched(gallery: Gallery) -> None:
    enroll(gallery, {"alice": [0.9], "bob": [0.3]})
    match = Matcher(gallery, threshold=0.5, margin=0.1).match(QUERY)
    assert (match.person_id, match.reason) == ("alice", "matched")
    assert match.score == pytest.approx(0.9, abs=1e-5) and match.second == pytest.approx(0.3, abs=1e-5)


def test_matcher_best_below_threshold_unknown(gallery: Gallery) -> None:
    enroll(gallery, {"alice": [0.9], "bob": [0.3]})
    match = Matcher(gallery, threshold=0.95, margin=0.1).match(QUERY)
    assert (match.person_id, match.reason) == (None, "below_threshold")
    assert match.score == pytest.approx(0.9, abs=1e-5)


def test_matcher_close_second_person_ambiguous(gallery: Gallery) -> None:
    enroll(gallery, {"alice": [0.9], "bob": [0.85]})
    assert Matcher(gallery, threshold=0.5, margin=0.1).match(QUERY).reason == "ambiguous"
    assert Matcher(gallery, threshold=0.5, margin=0.1).match(QUERY).person_id is None
    assert Matcher(gallery, threshold=0.5, margin=0.0).match(QUERY).person_id == "alice"


def test_matcher_second_is_next_person_not_next_template(gallery: Gallery) -> None:
    enroll(gallery, {"alice": [0.9, 0.89, 0.88], "bob": [0.5]})
    match = Matcher(gallery, threshold=0.5, margin=0.1, top_k=5).match(QUERY)
    assert (match.person_id, match.reason) == ("alice", "matched")
    assert match.second == pytest.approx(0.5, abs=1e-5)


def test_matcher_top_k_all_one_person_widens_to_find_second(gallery: Gallery) -> None:
    enroll(gallery, {"alice": [0.9, 0.89, 0.88, 0.87, 0.86], "bob": [0.85]})
    match = Matcher(gallery, threshold=0.5, margin=0.1, top_k=3).match(QUERY)
    assert match.reason == "ambiguous" and match.second == pytest.approx(0.85, abs=1e-5)


def test_matcher_only_one_person_has_no_second(gallery: Gallery) -> None:
    enroll(gallery, {"alice": [0.9, 0.8]})
    match = Matcher(gallery, threshold=0.5, margin=0.1).match(QUERY)
    assert (match.person_id, match.second, match.reason) == ("alice", None, "matched")


def test_matcher_empty_gallery_unknown(gallery: Gallery) -> None:
    assert Matcher(gallery, threshold=0.5, margin=0.1).match(QUERY) == Match(None, 0.0, None, "empty_gallery")


def test_matcher_batch_equals_single_matches(gallery: Gallery) -> None:
    enroll(gallery, {"alice": [0.9, 0.7], "bob": [0.85], "carol": [0.2]})
    rng = np.random.default_rng(3)
    queries = np.vstack([QUERY, rng.standard_normal((6, DIM)).astype(np.float32)])
    matcher = Matcher(gallery, threshold=0.3, margin=0.05, top_k=2)
    batch, single = matcher.match_batch(queries), [matcher.match(q) for q in queries]
    # the same decisions; scores equal up to float32 rounding (hnswlib's batch path may sum in another order)
    assert [(m.person_id, m.reason) for m in batch] == [(m.person_id, m.reason) for m in single]
    for got, want in zip(batch, single, strict=True):
        assert got.score == pytest.approx(want.score, abs=1e-6)
        assert (got.second is None) == (want.second is None)
        assert got.second is None or got.second == pytest.approx(want.second, abs=1e-6)


def test_matcher_bad_arguments_refused(gallery: Gallery) -> None:
    with pytest.raises(ValueError, match="top_k"):
        Matcher(gallery, threshold=0.5, margin=0.1, top_k=0)
    with pytest.raises(ValueError, match="margin"):
        Matcher(gallery, threshold=0.5, margin=-0.1)
