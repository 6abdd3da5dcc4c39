"""Object key rules and the builders for each kind of object central stores.

Layout (one bucket, or one folder tree):

    photos/{person_id}/{photo_id}.jpg             enrollment photos
    crops/{yyyy}/{mm}/{dd}/{event_id}.jpg          face crops of recognition events (UTC date)
    snapshots/{gallery_id}/{version}.msgpack       gallery snapshots
    models/{model_id}/{file}                       model artifacts
    jobs/{job_id}.zip                              uploaded bulk-enrollment archives (until the job ends)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from central.storage.objects import InvalidKeyError

MAX_KEY_BYTES = 1024
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def validate_key(key: str) -> str:
    """Return `key` if it is a usable object key, else raise InvalidKeyError.

    A key is 1..1024 UTF-8 bytes of printable characters without a backslash, does not start or end with
    "/", and has no empty, "." or ".." segment. The same rules hold on S3 and on the filesystem."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"object key {key!r}: must be a non-empty string")
    _check_text(key, "object key")
    if key.endswith("/"):
        raise InvalidKeyError(f"object key {key!r}: must not end with '/' (that is a prefix)")
    return key


def validate_prefix(prefix: str, *, allow_empty: bool = True) -> str:
    """Return `prefix` if it is a folder prefix ("" or ending in "/"), else raise InvalidKeyError."""
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"prefix {prefix!r}: must be a string")
    if not prefix:
        if allow_empty:
            return prefix
        raise InvalidKeyError(
            "prefix '': refusing to act on every object; name a folder such as 'photos/p1/'"
        )
    if not prefix.endswith("/"):
        raise InvalidKeyError(
            f"prefix {prefix!r}: must end with '/' so that 'photos/p1/' never matches 'p10'"
        )
    _check_text(prefix[:-1], "prefix")
    return prefix


def _check_text(text: str, what: str) -> None:
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"{what} {text[:40]!r}...: longer than {MAX_KEY_BYTES} bytes")
    if not text.isprintable() or "\\" in text:
        raise InvalidKeyError(f"{what} {text!r}: only printable characters, no backslash")
    if text.startswith("/"):
        raise InvalidKeyError(f"{what} {text!r}: must not start with '/'")
    for segment in text.split("/"):
        if segment in {"", ".", ".."}:
            raise InvalidKeyError(f"{what} {text!r}: no empty, '.' or '..' path segments")


def segment(value: object, what: str) -> str:
    """One key segment from an id: letters, digits, '.', '_', '-', starting with a letter or digit."""
    text = str(value)
    if not _SEGMENT.fullmatch(text):
        raise InvalidKeyError(
            f"{what} {text!r}: use 1-200 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    return text


def person_photos_prefix(person_id: object) -> str:
    return f"photos/{segment(person_id, 'person id')}/"


def photo_key(person_id: object, photo_id: object) -> str:
    return f"{person_photos_prefix(person_id)}{segment(photo_id, 'photo id')}.jpg"


def crop_key(event_id: object, ts: datetime) -> str:
    """Crop of an event, filed under the event's UTC date; `ts` must be timezone-aware."""
    if ts.tzinfo is None:
        raise InvalidKeyError(f"crop time {ts.isoformat()}: needs a timezone (events carry UTC times)")
    day = ts.astimezone(UTC)
    return f"crops/{day:%Y}/{day:%m}/{day:%d}/{segment(event_id, 'event id')}.jpg"


def crops_day_prefix(day: datetime) -> str:
    if day.tzinfo is None:
        raise InvalidKeyError(f"crop day {day.isoformat()}: needs a timezone")
    utc = day.astimezone(UTC)
    return f"crops/{utc:%Y}/{utc:%m}/{utc:%d}/"


def snapshot_key(gallery_id: object, version: int) -> str:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidKeyError(f"gallery version {version!r}: must be an integer >= 0")
    return f"snapshots/{segment(gallery_id, 'gallery id')}/{version}.msgpack"


def model_key(model_id: object, file: str) -> str:
    return f"models/{segment(model_id, 'model id')}/{segment(file, 'model file name')}"


def job_key(job_id: object) -> str:
    """The uploaded archive of a bulk enrollment job."""
    return f"jobs/{segment(job_id, 'job id')}.zip"
