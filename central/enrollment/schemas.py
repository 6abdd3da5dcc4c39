"""Response bodies of enrollment: one photo's outcome, and bulk enrollment jobs as the API shows them
(a job's progress, its per-photo results, list entries).

A job goes queued → running → done (every photo has a result) or failed (the archive could not be
read, or the job kept failing: `error` says why). `processed` = `accepted` + `rejected` and grows
while it runs; `total` is the number of photos in the archive. See docs/central-enrollment-jobs.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from central.enrollment.archive import SkippedEntry

JobStatus = Literal["queued", "running", "done", "failed"]


class PhotoResult(msgspec.Struct, frozen=True):
    """The outcome of one photo. `reason` (rejected only): no_face | multiple_faces | low_quality |
    duplicate_person | bad_image | duplicate_photo; `message` says what was wrong and what to do."""

    filename: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    message: str | None = None
    photo_id: UUID | None = None
    template_id: UUID | None = None
    quality: float | None = None
    similar_person_id: UUID | None = None


class JobResult(msgspec.Struct, frozen=True):
    """The outcome of one photo. `seq` orders results (and is the cursor `results_after` takes);
    `reason` (rejected only): no_face | multiple_faces | low_quality | duplicate_person | bad_image |
    duplicate_photo | error."""

    seq: int
    external_id: str
    filename: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    message: str | None = None
    photo_id: UUID | None = None
    template_id: UUID | None = None
    quality: float | None = None
    similar_person_id: UUID | None = None


class JobSummary(msgspec.Struct, frozen=True):
    """A job in lists: status and counts, without skipped entries and results."""

    id: UUID
    status: JobStatus
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total: int
    processed: int
    accepted: int
    rejected: int
    people: int
    skipped_count: int
    error: str | None


class JobRead(JobSummary, frozen=True):
    """One job: counts, the entries skipped when the archive was read, and a page of results.

    `next_results` is the `results_after` value for the next page of results; null when none are left
    (while the job runs, poll again with the same value to get results as they come)."""

    skipped: list[SkippedEntry]
    results: list[JobResult] = []
    next_results: int | None = None
