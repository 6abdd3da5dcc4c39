"""Same/different decisions at the default threshold, on real photos."""

from __future__ import annotations

import itertools

import pytest

from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from tests.support.faces import DEV_DIR, DEV_REASON
from tests.support.labelled import largest_embedding, pairs

OBAMA = ("obama", "obama2", "obama3")
OTHERS = ("biden", "astronaut", "grace_hopper")
needs_dev = pytest.mark.skipif(not DEV_DIR.is_dir(), reason=DEV_REASON)


def test_verify_same_person_samples_above_threshold(
    pipeline: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    vectors = {n: largest_embedding(pipeline, samples[n].path, 640) for n in OBAMA}
    for a, b in itertools.combinations(OBAMA, 2):
        assert float(vectors[a] @ vectors[b]) >= pipeline.threshold, (a, b)


def test_verify_different_people_samples_below_threshold(
    pipeline: FacePipeline, samples: dict[str, SamplePhoto]
) -> None:
    vectors = {n: largest_embedding(pipeline, samples[n].path, 640) for n in OBAMA + OTHERS}
    for a, b in itertools.product(OBAMA, OTHERS):
        assert float(vectors[a] @ vectors[b]) < pipeline.threshold, (a, b)
    for a, b in itertools.combinations(OTHERS, 2):
        assert float(vectors[a] @ vectors[b]) < pipeline.threshold, (a, b)


@pytest.mark.devdata
@needs_dev
def test_verify_dev_pairs_all_decided_correctly(pipeline: FacePipeline) -> None:
    result = pairs(pipeline, 640)
    same = [p for p in result if p.same]
    different = [p for p in result if not p.same]
    assert len(same) >= 15 and len(different) >= 90
    assert [p for p in same if p.similarity < pipeline.threshold] == []
    assert [p for p in different if p.similarity >= pipeline.threshold] == []


@pytest.mark.devdata
@needs_dev
def test_default_detect_size_decisions_at_least_as_good_as_full_frame(ungated: FacePipeline) -> None:
    threshold = ungated.threshold
    default = pairs(ungated, ungated.settings.detection.detect_size)
    full = pairs(ungated, 0)
    correct_default = sum((p.similarity >= threshold) == p.same for p in default)
    correct_full = sum((p.similarity >= threshold) == p.same for p in full)
    assert ungated.settings.detection.detect_size == 640
    assert correct_default >= correct_full
    # and the margin between the classes is no worse either
    margin_default = min(p.similarity for p in default if p.same) - max(
        p.similarity for p in default if not p.same
    )
    margin_full = min(p.similarity for p in full if p.same) - max(p.similarity for p in full if not p.same)
    assert margin_default >= margin_full - 0.02
