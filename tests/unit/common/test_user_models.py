"""User-supplied InsightFace-format models (SCRFD detector, ArcFace recognizer) loaded by file path.

The models are the small graphs of tests/support/onnx_graphs.py, built per test in tmp_path: an SCRFD-like
detector that finds white squares of side 4 strides centred on an anchor point, and an ArcFace-like
recognizer with a seeded linear head, so every output can be checked exactly.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from common.embedding import l2_normalize
from common.errors import ModelError
from common.models.manifest import Kind
from common.pipeline.detector import Detector, DetectorSettings
from common.pipeline.embedder import Embedder
from common.pipeline.face import Detection
from common.pipeline.image import Frame
from common.pipeline.pipeline import DEFAULT_THRESHOLDS, FacePipeline, PipelineSettings, open_model
from common.pipeline.quality import QualitySettings
from common.pipeline.runtime import RuntimeSettings
from common.pipeline.scrfd import decode_scrfd
from tests.support.onnx_graphs import (
    EDGE,
    EMBEDDING_SIZE,
    INPUT_NAME,
    KPS_OFFSETS,
    SHARPNESS,
    arcface_reference,
    build_arcface,
    build_scrfd,
)

WHITE = 255
# The graph's score for a white square on black that fits an anchor's box: its mean is
# (255 - 127.5) / 128 = +0.996, the 8s x 8s window around it a quarter white: -0.498.
FITTING_SCORE = 1 / (1 + math.exp(-SHARPNESS * (0.99609375 * 1.5 - EDGE)))
Square = tuple[int, int, int]  # centre x, centre y, side, in pixels


def _settings(
    tmp_path: Path,
    detector: str = "yunet-2023mar",
    recognizer: str = "sface-2021dec",
    cache_optimized: bool = True,
    score_threshold: float = 0.6,
) -> PipelineSettings:
    return PipelineSettings(
        detector=detector,
        recognizer=recognizer,
        models_dir=str(tmp_path),
        runtime=RuntimeSettings(intra_op_threads=1, cache_optimized=cache_optimized),
        detection=DetectorSettings(score_threshold=score_threshold),
        quality=QualitySettings(enabled=False),
    )


def _scrfd_detector(
    tmp_path: Path, path: Path, cache_optimized: bool = True, score_threshold: float = 0.6
) -> Detector:
    settings = _settings(
        tmp_path, f"scrfd:{path}", cache_optimized=cache_optimized, score_threshold=score_threshold
    )
    return FacePipeline.load(settings, recognizer=False).detector


def _arcface_embedder(tmp_path: Path, path: Path) -> Embedder:
    return Embedder(open_model(f"arcface:{path}", "recognizer", _settings(tmp_path)))


def _frame(height: int, width: int, squares: list[Square]) -> Frame:
    """A black BGR frame with white squares."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    for cx, cy, side in squares:
        half = side // 2
        frame[cy - half : cy + half, cx - half : cx + half] = WHITE
    return frame


def _expected(square: Square, scale: float = 1.0) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Box [x, y, w, h] and landmarks, in frame pixels, of a square the graph detects exactly.

    `square` is in detector input pixels: side 4 strides (the predicted box: 2 strides each side
    of the anchor point), centred on the anchor point; `scale` is detector input over frame.
    """
    cx, cy, side = square
    stride = side // 4
    box = np.array([cx - side / 2, cy - side / 2, side, side], dtype=np.float32) / scale
    landmarks = (np.array([cx, cy], dtype=np.float32) + KPS_OFFSETS * stride) / scale
    return box, landmarks


def _assert_found(detection: Detection, square: Square, scale: float = 1.0, score_tol: float = 1e-4) -> None:
    box, landmarks = _expected(square, scale)
    np.testing.assert_allclose(detection.box, box, atol=1e-3)
    np.testing.assert_allclose(detection.landmarks, landmarks, atol=1e-3)
    assert detection.score == pytest.approx(FITTING_SCORE, abs=score_tol)


def _crops(count: int) -> list[NDArray[np.uint8]]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(count)]


# --- SCRFD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batched_outputs", "fixed_size"),
    [(False, 640), (True, 640), (False, None)],
    ids=["flat", "batched", "dynamic"],
)
def test_scrfd_square_per_stride_found_at_its_place(
    tmp_path: Path, batched_outputs: bool, fixed_size: int | None
) -> None:
    # 480x640 though the file fixes 640x640: the loader must have made height and width dynamic.
    squares = [(160, 224, 128), (416, 128, 64), (456, 360, 32)]  # strides 32, 16, 8
    path = build_scrfd(tmp_path / "scrfd.onnx", batched_outputs=batched_outputs, fixed_size=fixed_size)
    detections = _scrfd_detector(tmp_path, path).detect(_frame(480, 640, squares))
    assert len(detections) == len(squares)
    by_size = sorted(detections, key=lambda d: -float(d.box[2]))
    for detection, square in zip(by_size, squares, strict=True):
        _assert_found(detection, square)


# 1280x960 halves exactly; 1600x1200 halves, then area-resizes by 0.8, which blurs the square's
# edges by a pixel and lowers its score a little.
@pytest.mark.parametrize(
    ("height", "width", "scale", "score_tol"), [(960, 1280, 0.5, 1e-4), (1200, 1600, 0.4, 0.01)]
)
def test_scrfd_large_frame_detections_mapped_to_full_frame(
    tmp_path: Path, height: int, width: int, scale: float, score_tol: float
) -> None:
    # Downscaled to 640x480, the square is 128 px centred on (320, 224): stride 32 exactly.
    side = round(128 / scale)
    frame = _frame(height, width, [(round(320 / scale), round(224 / scale), side)])
    detector = _scrfd_detector(tmp_path, build_scrfd(tmp_path / "scrfd.onnx"))
    prepared = detector.prepare(frame)
    assert prepared.tensor.shape == (1, 3, 480, 640)
    assert prepared.scale_x == pytest.approx(scale) and prepared.scale_y == pytest.approx(scale)
    detections = detector.detect(frame)
    assert len(detections) == 1
    _assert_found(detections[0], (320, 224, 128), scale, score_tol)


def test_scrfd_overlapping_candidates_nms_keeps_best(tmp_path: Path) -> None:
    # A low threshold lets the neighbours of the fitting anchor through (scores ~0.02): NMS must
    # collapse them, and the two identical anchors of the fitting cell, into the one right box.
    square = (320, 224, 128)
    frame = _frame(480, 640, [square])
    detector = _scrfd_detector(tmp_path, build_scrfd(tmp_path / "scrfd.onnx"), score_threshold=0.01)
    prepared = detector.prepare(frame)
    outputs = detector.model.run(prepared.tensor)
    _, scores, _ = decode_scrfd(outputs, detector.model.output_names, 640, 480, 0.01)
    assert len(scores) >= 10
    assert int(np.sum(scores > 0.9)) == 2  # the two anchors of the fitting cell
    detections = detector.decode(outputs, prepared)
    assert len(detections) < len(scores) // 2
    assert detections[0].score == pytest.approx(float(scores.max()))
    _assert_found(detections[0], square)
    assert all(d.score < 0.1 for d in detections[1:])


def test_scrfd_black_frame_no_detection(tmp_path: Path) -> None:
    detector = _scrfd_detector(tmp_path, build_scrfd(tmp_path / "scrfd.onnx"))
    assert detector.detect(np.zeros((480, 640, 3), dtype=np.uint8)) == []


def test_scrfd_load_without_optimised_cache_detects_same(tmp_path: Path) -> None:
    square = (320, 224, 128)
    path = build_scrfd(tmp_path / "scrfd.onnx")
    detector = _scrfd_detector(tmp_path, path, cache_optimized=False)
    assert not list(tmp_path.glob(".optimized/*.onnx"))  # only the sha256 stamp is kept
    detections = detector.detect(_frame(480, 640, [square]))
    assert len(detections) == 1
    _assert_found(detections[0], square)


def test_scrfd_load_optimised_graph_cached_next_to_model(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    path = build_scrfd(tmp_path / "models" / "scrfd.onnx")
    first = _scrfd_detector(tmp_path, path)
    cached = list((path.parent / ".optimized").glob(f"{first.model.manifest.id}-*.onnx"))
    assert len(cached) == 1
    frame = _frame(480, 640, [(320, 224, 128)])
    again = _scrfd_detector(tmp_path, path)  # loads the cached graph
    np.testing.assert_array_equal(again.detect(frame)[0].box, first.detect(frame)[0].box)


def test_scrfd_manifest_id_from_sha256_and_insightface_preprocessing(tmp_path: Path) -> None:
    path = build_scrfd(tmp_path / "scrfd.onnx")
    manifest = _scrfd_detector(tmp_path, path).model.manifest
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert re.fullmatch(r"scrfd-[0-9a-f]{12}", manifest.id)
    assert manifest.id == f"scrfd-{digest[:12]}"
    assert (manifest.kind, manifest.family, manifest.sha256) == ("detector", "scrfd", digest)
    assert (manifest.color_order, manifest.mean, manifest.std) == ("RGB", 127.5, 128.0)


def test_scrfd_prepare_rgb_normalised_in_valid_region(tmp_path: Path) -> None:
    detector = _scrfd_detector(tmp_path, build_scrfd(tmp_path / "scrfd.onnx"))
    frame = np.empty((470, 630, 3), dtype=np.uint8)
    frame[...] = (0, 128, 255)  # BGR
    tensor = detector.prepare(frame).tensor
    assert tensor.shape == (1, 3, 480, 640) and tensor.dtype == np.float32
    for channel, value in enumerate((255, 128, 0)):  # RGB
        np.testing.assert_array_equal(tensor[0, channel, :470, :630], np.float32((value - 127.5) / 128))


def test_scrfd_prepare_padding_is_black_after_normalisation(tmp_path: Path) -> None:
    # Padding is black pixels, normalised like the rest: (0 - 127.5) / 128, as InsightFace pads.
    detector = _scrfd_detector(tmp_path, build_scrfd(tmp_path / "scrfd.onnx"))
    tensor = detector.prepare(np.full((470, 630, 3), WHITE, dtype=np.uint8)).tensor
    np.testing.assert_array_equal(tensor[0, :, :470, :630], np.float32((255 - 127.5) / 128))
    black = np.float32(-127.5 / 128)
    assert np.all(tensor[0, :, 470:, :] == black)
    assert np.all(tensor[0, :, :, 630:] == black)


# --- ArcFace -------------------------------------------------------------------------------------


def test_arcface_batch_of_three_unit_float32_512(tmp_path: Path) -> None:
    embedder = _arcface_embedder(tmp_path, build_arcface(tmp_path / "arcface.onnx", fixed_batch=True))
    vectors = embedder.embed(_crops(3))
    assert vectors.shape == (3, EMBEDDING_SIZE) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(np.max(np.abs(vectors[0] - vectors[1]))) > 0.01  # different crops, different vectors


def test_arcface_batch_equals_one_by_one(tmp_path: Path) -> None:
    embedder = _arcface_embedder(tmp_path, build_arcface(tmp_path / "arcface.onnx", fixed_batch=True))
    crops = _crops(3)
    batch = embedder.embed(crops)
    alone = np.concatenate([embedder.embed([crop]) for crop in crops])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_arcface_embeddings_are_the_graph_on_preprocessed_crops(tmp_path: Path) -> None:
    embedder = _arcface_embedder(tmp_path, build_arcface(tmp_path / "arcface.onnx"))
    crops = _crops(2)
    expected = l2_normalize(arcface_reference(embedder.preprocess(crops)))
    np.testing.assert_allclose(embedder.embed(crops), expected, atol=1e-5)


def test_arcface_preprocess_rgb_scaled_to_unit_range(tmp_path: Path) -> None:
    embedder = _arcface_embedder(tmp_path, build_arcface(tmp_path / "arcface.onnx"))
    crops = _crops(2)
    expected = (np.stack(crops)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 127.5
    batch = embedder.preprocess(crops)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, expected, atol=1e-6)


@pytest.mark.parametrize("fixed_batch", [True, False], ids=["batch1", "batch_none"])
def test_arcface_weights_listed_as_inputs_stripped_at_load(tmp_path: Path, fixed_batch: bool) -> None:
    plain = _arcface_embedder(tmp_path, build_arcface(tmp_path / "plain.onnx"))
    path = build_arcface(tmp_path / "sface_style.onnx", fixed_batch=fixed_batch, weights_as_inputs=True)
    embedder = _arcface_embedder(tmp_path, path)
    inputs = embedder.model.session.get_inputs()
    assert [i.name for i in inputs] == [INPUT_NAME]
    assert isinstance(inputs[0].shape[0], str)  # batch made dynamic
    crops = _crops(3)
    np.testing.assert_allclose(embedder.embed(crops), plain.embed(crops), atol=1e-5)


def test_arcface_manifest_id_from_sha256_and_default_threshold(tmp_path: Path) -> None:
    path = build_arcface(tmp_path / "arcface.onnx")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = _arcface_embedder(tmp_path, path).model.manifest
    assert manifest.id == f"arcface-{digest[:12]}"
    assert (manifest.kind, manifest.family, manifest.embedding_size) == ("recognizer", "arcface", 512)
    assert (manifest.color_order, manifest.mean, manifest.std) == ("RGB", 127.5, 127.5)
    pipeline = FacePipeline.load(
        _settings(tmp_path, f"scrfd:{build_scrfd(tmp_path / 'scrfd.onnx')}", f"arcface:{path}")
    )
    assert pipeline.threshold == DEFAULT_THRESHOLDS["arcface"]


def test_pipeline_user_models_process_embeds_face(tmp_path: Path) -> None:
    detector = build_scrfd(tmp_path / "scrfd.onnx")
    recognizer = build_arcface(tmp_path / "arcface.onnx")
    pipeline = FacePipeline.load(_settings(tmp_path, f"scrfd:{detector}", f"arcface:{recognizer}"))
    square = (320, 224, 128)
    faces = pipeline.process(_frame(960, 1280, [(640, 448, 256)]))
    assert len(faces) == 1
    _assert_found(faces[0].detection, square, 0.5)
    vector, crop = faces[0].embedding, faces[0].crop
    assert vector is not None and crop is not None and pipeline.embedder is not None
    assert vector.shape == (EMBEDDING_SIZE,) and vector.dtype == np.float32
    assert faces[0].model_id == pipeline.embedder.model_id
    assert faces[0].model_id.startswith("arcface-")
    np.testing.assert_allclose(vector, pipeline.embedder.embed([crop])[0], atol=1e-5)


# --- wrong models and specs ----------------------------------------------------------------------


def test_scrfd_spec_arcface_file_raises_model_error(tmp_path: Path) -> None:
    path = build_arcface(tmp_path / "arcface.onnx")
    with pytest.raises(ModelError, match="has 1 outputs, but scrfd detectors have 9"):
        FacePipeline.load(_settings(tmp_path, detector=f"scrfd:{path}"), recognizer=False).detect(
            np.zeros((480, 640, 3), dtype=np.uint8)
        )


def test_scrfd_without_landmark_outputs_raises_model_error(tmp_path: Path) -> None:
    path = build_scrfd(tmp_path / "scrfd_nokps.onnx", landmarks=False)
    with pytest.raises(ModelError, match="has 6 outputs, but scrfd detectors have 9"):
        _scrfd_detector(tmp_path, path).detect(_frame(480, 640, [(320, 224, 128)]))


def test_arcface_spec_scrfd_file_raises_model_error(tmp_path: Path) -> None:
    # A dynamic-size SCRFD graph runs at 112x112; its first output is not one row per face.
    path = build_scrfd(tmp_path / "scrfd.onnx", fixed_size=None)
    with pytest.raises(ModelError, match="has 9 outputs, but arcface recognizers have 1"):
        _arcface_embedder(tmp_path, path).embed(_crops(1))


def test_arcface_spec_fixed_640_scrfd_file_raises_model_error(tmp_path: Path) -> None:
    path = build_scrfd(tmp_path / "scrfd.onnx", fixed_size=640)
    with pytest.raises(ModelError, match="has 9 outputs, but arcface recognizers have 1"):
        _arcface_embedder(tmp_path, path).embed(_crops(1))


@pytest.mark.parametrize(("kind", "family"), [("detector", "scrfd"), ("recognizer", "arcface")])
@pytest.mark.parametrize("cache_optimized", [True, False], ids=["cached", "uncached"])
def test_user_model_random_bytes_raise_model_error(
    tmp_path: Path, kind: Kind, family: str, cache_optimized: bool
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        open_model(f"{family}:{path}", kind, _settings(tmp_path, cache_optimized=cache_optimized))


def test_user_model_empty_file_raises_model_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelError, match="one image input"):
        open_model(f"scrfd:{path}", "detector", _settings(tmp_path))


@pytest.mark.parametrize(("kind", "family"), [("detector", "scrfd"), ("recognizer", "arcface")])
def test_user_model_missing_file_raises_model_error(tmp_path: Path, kind: Kind, family: str) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        open_model(f"{family}:{tmp_path / 'missing.onnx'}", kind, _settings(tmp_path))


@pytest.mark.parametrize("kind", ["detector", "recognizer"])
def test_model_spec_unknown_family_raises_model_error(tmp_path: Path, kind: Kind) -> None:
    path = build_scrfd(tmp_path / "scrfd.onnx")
    with pytest.raises(ModelError, match=f"unknown {kind} 'foo:"):
        open_model(f"foo:{path}", kind, _settings(tmp_path))


def test_detector_setting_arcface_spec_raises_model_error(tmp_path: Path) -> None:
    path = build_arcface(tmp_path / "arcface.onnx")
    with pytest.raises(ModelError, match="unknown detector"):
        FacePipeline.load(_settings(tmp_path, detector=f"arcface:{path}"), recognizer=False)


def test_detector_setting_default_recognizer_id_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a recognizer"):
        FacePipeline.load(_settings(tmp_path, detector="sface-2021dec"), recognizer=False)
