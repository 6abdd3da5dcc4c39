"""What enrollment is configured with: photo, upload and archive limits, the duplicate threshold and how
many photos a replica's jobs keep in flight, taken from CentralSettings by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from central.enrollment.archive import ArchiveLimits
from central.settings import CentralSettings
from common.pipeline.image import ImageLimits


@dataclass(frozen=True, slots=True)
class EnrollmentSettings:
    image: ImageLimits
    """FACEGATE_MAX_PHOTO_BYTES and _MAX_PHOTO_PIXELS: what a photo may be to be decoded."""
    max_photos_per_request: int
    max_zip_bytes: int
    archive: ArchiveLimits
    duplicate_threshold: float | None
    """FACEGATE_DUPLICATE_THRESHOLD; None: the recognizer's match threshold."""
    photos_in_flight: int

    @property
    def max_photo_bytes(self) -> int:
        return self.image.max_bytes


def enrollment_settings(settings: CentralSettings) -> EnrollmentSettings:
    return EnrollmentSettings(
        image=ImageLimits(max_bytes=settings.max_photo_bytes, max_pixels=settings.max_photo_pixels),
        max_photos_per_request=settings.max_photos_per_request,
        max_zip_bytes=settings.max_zip_bytes,
        archive=archive_limits(settings),
        duplicate_threshold=settings.duplicate_threshold,
        photos_in_flight=photos_in_flight(settings),
    )


def archive_limits(settings: CentralSettings) -> ArchiveLimits:
    """The archive limits of FACEGATE_MAX_ZIP_ENTRIES, _MAX_ZIP_UNPACKED_BYTES and _MAX_PHOTO_BYTES."""
    return ArchiveLimits(settings.max_zip_entries, settings.max_zip_unpacked_bytes, settings.max_photo_bytes)


def photos_in_flight(settings: CentralSettings) -> int:
    """Photos a replica's jobs have in flight: twice the inference threads, so they stay busy while other
    photos wait on the database and storage, but leaving half the connection pool to requests."""
    workers = settings.enroll_workers
    return max(1, min(2 * workers, workers + settings.db_pool_max // 2))
