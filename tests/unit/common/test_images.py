"""Image loading: limits are checked from the header before decoding; every failure is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ImageError
from common.pipeline.image import ImageLimits, decode_image, load_image
from common.pipeline.imageheader import image_size
from common.pipeline.pipeline import FacePipeline
from demo.sample_faces import SamplePhoto
from tests.support.badimages import png_header_only, write_bad_images


@pytest.fixture
def bad(tmp_path: Path, samples: dict[str, SamplePhoto]) -> dict[str, Path]:
    return write_bad_images(tmp_path, samples["obama"].path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("empty", "empty file"),
        ("truncated", "truncated"),
        ("text", "not a supported image"),
        ("tiny", "smallest side"),
        ("huge", "over the limit"),
    ],
)
def test_load_image_bad_file_raises_clear_error(bad: dict[str, Path], kind: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(bad[kind], ImageLimits())


def test_load_image_over_pixel_limit_refused_from_header_alone(tmp_path: Path) -> None:
    # 3.6 gigapixels: decoding would need ~10 GiB; the header check refuses it first.
    path = png_header_only(tmp_path / "giant.png", 60_000, 60_000)
    assert image_size(path.read_bytes()) == (60_000, 60_000)
    with pytest.raises(ImageError, match="3600000000 pixels, over the limit of 40000000"):
        load_image(path, ImageLimits())


def test_load_image_over_byte_limit_refused(samples: dict[str, SamplePhoto]) -> None:
    with pytest.raises(ImageError, match="bytes, over the limit"):
        load_image(samples["obama"].path, ImageLimits(max_bytes=1000))


def test_load_image_directory_raises_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path, ImageLimits())


@pytest.mark.parametrize("kind", ["grey", "rgba"])
def test_load_image_grey_or_rgba_png_gives_bgr_with_face(
    bad: dict[str, Path], pipeline: FacePipeline, kind: str
) -> None:
    frame = load_image(bad[kind], ImageLimits())
    assert frame.ndim == 3 and frame.shape[2] == 3
    faces = pipeline.process(frame)
    assert len(faces) == 1 and faces[0].embedding is not None


def test_pipeline_image_without_face_gives_empty_list(bad: dict[str, Path], pipeline: FacePipeline) -> None:
    assert pipeline.process(load_image(bad["noface"], ImageLimits())) == []


def test_decode_image_jpeg_cut_after_thumbnail_still_truncated(samples: dict[str, SamplePhoto]) -> None:
    data = samples["obama"].path.read_bytes()
    for cut in (len(data) - 2, len(data) // 3, 200):
        with pytest.raises(ImageError):
            decode_image(data[:cut], ImageLimits())
