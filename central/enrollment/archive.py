"""Bulk-enrollment zip archives, read safely: the whole directory is checked before any photo is unpacked.

Layout: one folder per person, named with the person's external id, holding that person's photos
(`alice/1.jpg`, `bob/a.png`). A single folder wrapping everything (`batch/alice/1.jpg`) is stripped.
An optional top-level `people.csv` (`external_id,display_name` header) gives display names; without
a row a person's display name is the folder name.

`plan_archive` reads only the central directory (and `people.csv`), so it is cheap enough to run in
the request. It refuses (InvalidInput / PayloadTooLarge with a code) an archive that is not a zip,
has unsafe names (absolute, `..`, backslashes, NUL), symlinks, encrypted entries, entries compressed
with anything but stored or deflate, too many entries, a zip-bomb compression ratio (per entry or
over the whole archive) or overlapping entries, or too many bytes to unpack. Entries it will not enrol
(not an image, too deep, too large, top-level files, system files) are listed as skipped.

Only stored and deflate: Python's zipfile bounds what a deflate stream may produce per read, but
unpacks a whole bzip2 block or LZMA chunk at once, however few bytes are asked for, so a 1 KiB bzip2
entry can take gigabytes of memory before any cap applies. `Unpacker` streams entries in 64 KiB reads
and counts what is really decompressed, not what the directory claims: no entry past its own cap (its
declared size, at most the photo limit) and no archive past its total.
"""

from __future__ import annotations

import csv
import io
import re
import stat
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass

import msgspec

from central.errors import InvalidInput, PayloadTooLarge
from common.errors import ImageError

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
PEOPLE_FILE = "people.csv"
MAX_PEOPLE_FILE_BYTES = 1024 * 1024
MAX_RATIO = 100.0
"""Largest uncompressed/compressed ratio accepted for an entry of RATIO_MIN_BYTES or more (photos
hardly compress; zeros compress about 1000:1)."""
RATIO_MIN_BYTES = 1024 * 1024
MAX_ID_CHARS = 200
_SYSTEM_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
_COMPRESSIONS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_METHOD_NAMES = {9: "deflate64", 12: "bzip2", 14: "LZMA", 93: "zstandard", 95: "xz", 98: "PPMd"}
READ_CHUNK = 64 * 1024
"""Bytes asked of a decompressor at once (zipfile's deflate reader never returns more)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"


class SkippedEntry(msgspec.Struct, frozen=True):
    """An archive entry that is not enrolled. `reason`: not_an_image, too_deep, top_level_file,
    system_file or too_large."""

    entry: str
    reason: str


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_entries: int
    max_unpacked_bytes: int
    max_photo_bytes: int


@dataclass(frozen=True, slots=True)
class PhotoEntry:
    """One photo to enrol: `seq` is its stable index in the plan (results are keyed by it)."""

    seq: int
    external_id: str
    filename: str
    member: str
    size: int


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    photos: tuple[PhotoEntry, ...]
    people: dict[str, str]
    """External id -> display name, for every person with at least one photo, sorted by id."""
    skipped: tuple[SkippedEntry, ...]
    unpacked_bytes: int


def open_archive(data: bytes) -> zipfile.ZipFile:
    """The zip in `data`; InvalidInput (bad_archive) when it is not one."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, struct.error) as err:
        raise InvalidInput(f"the body is not a readable zip archive ({err})", code="bad_archive") from err


def plan_archive(data: bytes, limits: ArchiveLimits) -> ArchivePlan:
    """Check the archive's directory against `limits` and list the photos to enrol (see module doc)."""
    declared = declared_entries(data)
    if declared is not None and declared > limits.max_entries:
        raise _too_many(declared, limits)
    with open_archive(data) as archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise _too_many(len(infos), limits)
        files = _checked_files(infos, len(data))
        strip = _wrapper(files)
        photos: list[tuple[str, str, zipfile.ZipInfo]] = []
        skipped: list[SkippedEntry] = []
        people_info: zipfile.ZipInfo | None = None
        for info in files:
            parts = info.filename.split("/")[strip:]
            reason = _skip_reason(parts, info, limits)
            if reason == "people_file":
                people_info = info
            elif reason is not None:
                skipped.append(SkippedEntry(info.filename, reason))
            else:
                photos.append((parts[0], parts[1], info))
        if not photos:
            raise InvalidInput(
                "the archive holds no photos: put each person's photos (.jpg, .jpeg, .png, .bmp, .webp) "
                "in a folder named with the person's external id",
                code="empty_archive",
            )
        names = _read_people(archive, people_info) if people_info is not None else {}
    return _plan(photos, names, skipped, limits)


def _plan(
    photos: list[tuple[str, str, zipfile.ZipInfo]],
    names: dict[str, str],
    skipped: list[SkippedEntry],
    limits: ArchiveLimits,
) -> ArchivePlan:
    photos.sort(key=lambda p: (p[0], p[1], p[2].filename))
    entries = tuple(
        PhotoEntry(seq, person, filename, info.filename, info.file_size)
        for seq, (person, filename, info) in enumerate(photos)
    )
    unpacked = sum(entry.size for entry in entries)
    if unpacked > limits.max_unpacked_bytes:
        raise PayloadTooLarge(
            f"the photos unpack to {unpacked} bytes, over the limit of {limits.max_unpacked_bytes} "
            "(FACEGATE_MAX_ZIP_UNPACKED_BYTES): split the archive",
            code="archive_too_large",
        )
    people = {person: names.get(person, person) for person in sorted({e.external_id for e in entries})}
    return ArchivePlan(entries, people, tuple(skipped), unpacked)


class Unpacker:
    """Unpacks entries of one open archive in READ_CHUNK reads, counting the bytes really decompressed:
    an entry past its cap, or the archive past `total` bytes, is refused (ImageError) before more is
    read. Thread-safe: job workers unpack photos of one archive from several threads."""

    def __init__(self, archive: zipfile.ZipFile, total: int) -> None:
        self.archive = archive
        self.total = total
        self.unpacked = 0
        self._lock = threading.Lock()

    def photo(self, entry: PhotoEntry) -> bytes:
        """One photo's bytes, never more than its declared size; ImageError when the entry is corrupt,
        unpacks to more than the directory says, or the archive's total is spent."""
        data = self.read(self.archive.getinfo(entry.member), entry.size)
        if len(data) != entry.size:
            raise ImageError(
                f"archive entry {entry.member!r} is corrupt: its size differs from the directory's"
            )
        return data

    def read(self, info: zipfile.ZipInfo, cap: int) -> bytes:
        """The entry's bytes; ImageError past `cap` bytes or past the archive's total."""
        if info.compress_type not in _COMPRESSIONS:
            raise ImageError(f"archive entry {info.filename!r}: {_method(info)} entries are not unpacked")
        out = bytearray()
        try:
            with self.archive.open(info) as handle:
                while chunk := handle.read(READ_CHUNK):
                    self._count(info, len(chunk))
                    out += chunk
                    if len(out) > cap:
                        raise ImageError(
                            f"archive entry {info.filename!r} unpacks to more than {cap} bytes (its "
                            "declared size or the limit): refusing it as a zip bomb or a corrupt entry"
                        )
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as err:
            raise ImageError(f"archive entry {info.filename!r} is corrupt: {err}") from err
        return bytes(out)

    def _count(self, info: zipfile.ZipInfo, size: int) -> None:
        with self._lock:
            self.unpacked += size
            if self.unpacked > self.total:
                raise ImageError(
                    f"the archive has unpacked more than {self.total} bytes in all, the sum its directory "
                    f"declares (at entry {info.filename!r}): refusing the rest as a zip bomb"
                )


def declared_entries(data: bytes) -> int | None:
    """The entry count in the end-of-central-directory record (zip64 aware), read before zipfile builds
    one object per entry; None when the record cannot be found (zipfile then reports the archive)."""
    tail_start = max(0, len(data) - (65536 + 22))
    at = data.rfind(_EOCD, tail_start)
    if at < 0 or at + 22 > len(data):
        return None
    count = int(struct.unpack_from("<H", data, at + 10)[0])
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == _EOCD64_LOCATOR:
        record = int(struct.unpack_from("<Q", data, locator + 8)[0])
        if record + 40 <= len(data):
            return int(struct.unpack_from("<Q", data, record + 32)[0])
    return count


def _too_many(count: int, limits: ArchiveLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the archive has {count} entries, over the limit of {limits.max_entries} "
        "(FACEGATE_MAX_ZIP_ENTRIES): split it",
        code="too_many_entries",
    )


def _checked_files(infos: list[zipfile.ZipInfo], archive_bytes: int) -> list[zipfile.ZipInfo]:
    """The file entries, after refusing unsafe, encrypted, unsupported or bomb-like entries."""
    seen: set[str] = set()
    files: list[zipfile.ZipInfo] = []
    compressed = unpacked = 0
    for info in infos:
        _check_name(info)
        if info.filename in seen:
            raise _unsafe(info, "appears twice")
        seen.add(info.filename)
        if info.is_dir():
            continue
        _check_entry(info)
        compressed += info.compress_size
        unpacked += info.file_size
        files.append(info)
    if compressed > archive_bytes:
        raise InvalidInput(
            "the archive's entries overlap (their compressed sizes add up to more than the file): "
            "this is how zip bombs are built; send an ordinary zip",
            code="zip_bomb",
        )
    if unpacked >= RATIO_MIN_BYTES and unpacked > MAX_RATIO * max(compressed, 1):
        raise InvalidInput(
            f"the archive unpacks {unpacked} bytes from {compressed} (over {MAX_RATIO:g}:1 in all): "
            "refusing a zip bomb; photos do not compress like that",
            code="zip_bomb",
        )
    return files


def _check_entry(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise InvalidInput(
            f"entry {info.filename!r} is encrypted: send an archive without a password",
            code="encrypted_archive",
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise _unsafe(info, "is a symbolic link")
    if info.compress_type not in _COMPRESSIONS:
        raise InvalidInput(
            f"entry {info.filename!r} is compressed with {_method(info)}: only stored and deflate entries "
            "are accepted (other methods can unpack gigabytes from a few bytes); re-create the zip with "
            "deflate, the default of zip tools",
            code="unsupported_compression",
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise InvalidInput(
            f"entry {info.filename!r} is stored (not compressed) but its directory gives two different "
            f"sizes ({info.compress_size} and {info.file_size}): the archive is corrupt",
            code="bad_archive",
        )
    _check_ratio(info)


def _method(info: zipfile.ZipInfo) -> str:
    name = _METHOD_NAMES.get(info.compress_type)
    return f"{name} (method {info.compress_type})" if name else f"compression method {info.compress_type}"


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if "\x00" in info.orig_filename or _CONTROL.search(name):
        raise _unsafe(info, "has control characters in its name")
    if "\\" in name:
        raise _unsafe(info, "has a backslash in its name (use '/' between folders)")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _unsafe(info, "has an absolute path")
    parts = name.removesuffix("/").split("/") if info.is_dir() else name.split("/")
    if any(part in {"", ".", ".."} for part in parts):
        raise _unsafe(info, "has an empty, '.' or '..' path segment")


def _check_ratio(info: zipfile.ZipInfo) -> None:
    if info.file_size >= RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise InvalidInput(
            f"entry {info.filename!r} unpacks {info.file_size} bytes from {info.compress_size} "
            f"(over {MAX_RATIO:g}:1): refusing a zip bomb; photos do not compress like that",
            code="zip_bomb",
        )


def _unsafe(info: zipfile.ZipInfo, what: str) -> InvalidInput:
    return InvalidInput(
        f"entry {info.filename!r} {what}: refusing the archive; use plain person/photo paths",
        code="unsafe_archive",
    )


def _wrapper(files: list[zipfile.ZipInfo]) -> int:
    """1 when every (non-system) file sits under one top folder that holds person folders, else 0."""
    parts = [f.filename.split("/") for f in files]
    kept = [p for p in parts if not _is_system(p)]
    tops = {p[0] for p in kept}
    if len(tops) == 1 and all(len(p) >= 2 for p in kept) and any(len(p) >= 3 for p in kept):
        return 1
    return 0


def _is_system(parts: list[str]) -> bool:
    return any(part in _SYSTEM_NAMES or part.startswith(".") for part in parts)


def _skip_reason(parts: list[str], info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    if _is_system(parts):
        return "system_file"
    if len(parts) == 1:
        if parts[0] == PEOPLE_FILE and info.file_size <= MAX_PEOPLE_FILE_BYTES:
            return "people_file"
        return "too_large" if parts[0] == PEOPLE_FILE else "top_level_file"
    if len(parts) > 2:
        return "too_deep"
    if "." + parts[1].rpartition(".")[2].lower() not in PHOTO_EXTENSIONS:
        return "not_an_image"
    if len(parts[0]) > MAX_ID_CHARS:
        return "bad_person_id"
    if info.file_size > limits.max_photo_bytes:
        return "too_large"
    return None


def _read_people(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, str]:
    """external_id -> display_name from people.csv; InvalidInput naming the line when it is wrong."""
    try:
        text = Unpacker(archive, MAX_PEOPLE_FILE_BYTES).read(info, MAX_PEOPLE_FILE_BYTES).decode("utf-8-sig")
    except (ImageError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{PEOPLE_FILE} cannot be read ({err}): save it as UTF-8 CSV") from err
    rows = csv.DictReader(io.StringIO(text))
    if rows.fieldnames is None or not {"external_id", "display_name"} <= set(rows.fieldnames):
        raise InvalidInput(f"{PEOPLE_FILE} needs a header line with columns external_id,display_name")
    names: dict[str, str] = {}
    for row in rows:
        external_id, name = (row.get("external_id") or "").strip(), (row.get("display_name") or "").strip()
        if not external_id or len(name) > MAX_ID_CHARS or _CONTROL.search(name):
            raise InvalidInput(
                f"{PEOPLE_FILE} line {rows.line_num}: needs an external_id and a display_name of at most "
                f"{MAX_ID_CHARS} characters without control characters"
            )
        names[external_id] = name
    return names
