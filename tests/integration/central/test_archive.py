"""Bulk-enrollment archives: layout rules and every unsafe archive refused before a job exists."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from central.enrollment.archive import ArchiveLimits, Unpacker, declared_entries, plan_archive
from central.errors import ApiError, InvalidInput, PayloadTooLarge
from central.settings import CentralSettings
from common.errors import ImageError
from tests.support.central_app import Central, start_central
from tests.support.job_archives import JOBS, build_zip, job_rows, post_zip

LIMITS = ArchiveLimits(max_entries=100, max_unpacked_bytes=10_000_000, max_photo_bytes=1_000_000)
JPEG = b"\xff\xd8\xff" + os.urandom(2000)  # bytes only: the plan never decodes photos


def refusal(data: bytes, limits: ArchiveLimits = LIMITS) -> ApiError:
    with pytest.raises(ApiError) as caught:
        plan_archive(data, limits)
    return caught.value


def patched(data: bytes, signature: bytes, offset: int, mask: int) -> bytes:
    """`data` with `mask` or-ed into the 16-bit field at `offset` of every record with `signature`."""
    out = bytearray(data)
    at = out.find(signature)
    while at >= 0:
        struct.pack_into("<H", out, at + offset, struct.unpack_from("<H", out, at + offset)[0] | mask)
        at = out.find(signature, at + 4)
    return bytes(out)


def symlink_zip() -> bytes:
    info = zipfile.ZipInfo("alice/face.jpg")
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, "../../etc/passwd")
        archive.writestr("alice/1.jpg", JPEG)
    return buffer.getvalue()


def overlapping_zip() -> bytes:
    """One stored 2 MB entry whose central record is repeated under a second name: both point at the
    same bytes, so the entries' sizes add up to more than the file (the overlapping zip bomb)."""
    data = build_zip({"alice/1.jpg": os.urandom(2_000_000)})
    start = data.rfind(b"PK\x01\x02")
    end = data.rfind(b"PK\x05\x06")
    record = data[start:end]
    twin = record.replace(b"alice/1.jpg", b"alice/2.jpg")
    eocd = bytearray(data[end:])
    struct.pack_into("<HHI", eocd, 8, 2, 2, len(record) * 2)
    return data[:end] + twin + bytes(eocd)


def test_archive_plan_lists_people_photos_in_order() -> None:
    data = build_zip({"bob/b.jpg": JPEG, "alice/2.png": JPEG, "alice/1.JPG": JPEG})
    plan = plan_archive(data, LIMITS)
    assert [(p.seq, p.external_id, p.filename) for p in plan.photos] == [
        (0, "alice", "1.JPG"),
        (1, "alice", "2.png"),
        (2, "bob", "b.jpg"),
    ]
    assert plan.people == {"alice": "alice", "bob": "bob"}
    assert plan.unpacked_bytes == 3 * len(JPEG)


def test_archive_single_wrapping_folder_is_stripped() -> None:
    plan = plan_archive(build_zip({"batch/alice/1.jpg": JPEG, "batch/bob/1.jpg": JPEG}), LIMITS)
    assert sorted(plan.people) == ["alice", "bob"]


def test_archive_one_person_folder_is_not_taken_for_a_wrapper() -> None:
    plan = plan_archive(build_zip({"alice/1.jpg": JPEG, "alice/2.jpg": JPEG}), LIMITS)
    assert list(plan.people) == ["alice"]


def test_archive_people_csv_gives_display_names() -> None:
    csv = b"external_id,display_name\nE-1,Alice Example\n"
    plan = plan_archive(build_zip({"people.csv": csv, "E-1/a.jpg": JPEG, "E-2/a.jpg": JPEG}), LIMITS)
    assert plan.people == {"E-1": "Alice Example", "E-2": "E-2"}


def test_archive_unusable_entries_are_skipped_with_reasons() -> None:
    data = build_zip(
        {
            "alice/1.jpg": JPEG,
            "alice/cv.pdf": b"%PDF",
            "alice/old/2.jpg": JPEG,
            "README.txt": b"hi",
            "__MACOSX/alice/._1.jpg": b"x",
            "alice/big.jpg": b"\xff" * 1_000_001,
        }
    )
    skipped = {s.entry: s.reason for s in plan_archive(data, LIMITS).skipped}
    assert skipped == {
        "alice/cv.pdf": "not_an_image",
        "alice/old/2.jpg": "too_deep",
        "README.txt": "top_level_file",
        "__MACOSX/alice/._1.jpg": "system_file",
        "alice/big.jpg": "too_large",
    }


def test_archive_unpacker_returns_the_entry_bytes() -> None:
    data = build_zip({"alice/1.jpg": JPEG}, zipfile.ZIP_DEFLATED)
    plan = plan_archive(data, LIMITS)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacker = Unpacker(archive, plan.unpacked_bytes)
        assert unpacker.photo(plan.photos[0]) == JPEG
        assert unpacker.unpacked == len(JPEG)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_archive_bzip2_and_lzma_entries_are_refused_before_anything_is_unpacked(method: int) -> None:
    """Python's zipfile unpacks a whole bzip2 block or LZMA chunk however few bytes are read: only stored
    and deflate entries are accepted, by the directory alone."""
    error = refusal(build_zip({"alice/1.jpg": JPEG, "bob/1.jpg": JPEG}, method))
    assert isinstance(error, InvalidInput) and error.code == "unsupported_compression"
    assert "only stored and deflate" in str(error) and "'alice/1.jpg'" in str(error)


def lying(data: bytes, member: bytes, declared: int) -> bytes:
    """`data` with the uncompressed size of `member` set to `declared` in its local and central records."""
    out = bytearray(data)
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = out.find(signature)
        while at >= 0:
            if out[at + name_at : at + name_at + len(member)] == member:
                struct.pack_into("<I", out, at + size_at, declared)
            at = out.find(signature, at + 4)
    return bytes(out)


def test_archive_unpacker_stops_a_deflate_entry_at_its_declared_size() -> None:
    """A deflate bomb whose directory declares 2000 bytes: the plan accepts it (nothing to see in the
    directory), and unpacking refuses it after at most one read past the declared size."""
    data = lying(build_zip({"alice/1.jpg": bytes(20_000_000)}, zipfile.ZIP_DEFLATED), b"alice/1.jpg", 2000)
    plan = plan_archive(data, LIMITS)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacker = Unpacker(archive, plan.unpacked_bytes)
        with pytest.raises(ImageError, match=r"corrupt|more than 2000 bytes"):
            unpacker.photo(plan.photos[0])
        assert unpacker.unpacked <= 2000 + 64 * 1024


def test_archive_unpacker_stops_at_the_archive_total() -> None:
    data = build_zip({"alice/1.jpg": JPEG, "bob/1.jpg": JPEG}, zipfile.ZIP_DEFLATED)
    plan = plan_archive(data, LIMITS)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacker = Unpacker(archive, len(JPEG) + 10)
        assert unpacker.photo(plan.photos[0]) == JPEG
        with pytest.raises(ImageError, match=r"more than \d+ bytes in all"):
            unpacker.photo(plan.photos[1])


def test_archive_entries_compressing_over_100_to_1_in_all_are_refused_as_a_bomb() -> None:
    """Each entry stays under the 1 MiB of the per-entry ratio check; together they are 40 MB of zeros."""
    data = build_zip({f"p{i}/1.jpg": bytes(1_000_000) for i in range(40)}, zipfile.ZIP_DEFLATED)
    error = refusal(data, replace(LIMITS, max_unpacked_bytes=100_000_000))
    assert error.code == "zip_bomb" and "in all" in str(error)


def test_archive_stored_entry_with_two_sizes_is_refused() -> None:
    data = lying(build_zip({"alice/1.jpg": JPEG}), b"alice/1.jpg", 100)
    error = refusal(data)
    assert error.code == "bad_archive" and "two different sizes" in str(error)


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("../evil/1.jpg", "'..'"),
        ("/etc/alice/1.jpg", "absolute"),
        ("C:/alice/1.jpg", "absolute"),
        ("alice\\1.jpg", "backslash"),
        ("alice//1.jpg", "empty"),
    ],
)
def test_archive_unsafe_names_are_refused(name: str, what: str) -> None:
    error = refusal(build_zip({name: JPEG, "bob/1.jpg": JPEG}))
    assert isinstance(error, InvalidInput) and error.code == "unsafe_archive"
    assert what in str(error)


def test_archive_symlink_entry_is_refused() -> None:
    error = refusal(symlink_zip())
    assert error.code == "unsafe_archive" and "symbolic link" in str(error)


def test_archive_encrypted_entry_is_refused() -> None:
    data = patched(build_zip({"alice/1.jpg": JPEG}), b"PK\x01\x02", 8, 0x1)
    assert refusal(data).code == "encrypted_archive"


def test_archive_overlapping_entries_are_refused_as_a_bomb() -> None:
    assert refusal(overlapping_zip(), replace(LIMITS, max_photo_bytes=3_000_000)).code == "zip_bomb"


def test_archive_high_ratio_entry_is_refused_as_a_bomb() -> None:
    data = build_zip({"alice/1.jpg": bytes(900_000) + JPEG * 100}, zipfile.ZIP_DEFLATED)
    assert refusal(data, replace(LIMITS, max_photo_bytes=2_000_000)).code == "zip_bomb"


def test_archive_entry_count_is_read_before_parsing() -> None:
    data = build_zip({f"p{i}/1.jpg": JPEG for i in range(101)})
    assert declared_entries(data) == 101
    error = refusal(data)
    assert isinstance(error, PayloadTooLarge) and error.code == "too_many_entries"


def test_archive_over_the_unpacked_limit_is_refused() -> None:
    data = build_zip({f"p{i}/1.jpg": JPEG for i in range(6)})
    error = refusal(data, replace(LIMITS, max_unpacked_bytes=5 * len(JPEG)))
    assert isinstance(error, PayloadTooLarge) and error.code == "archive_too_large"


def test_archive_without_photos_is_refused() -> None:
    assert refusal(build_zip({"alice/notes.txt": b"x"})).code == "empty_archive"


def test_archive_bad_people_csv_names_the_line() -> None:
    data = build_zip({"people.csv": b"external_id,display_name\n,nameless\n", "a/1.jpg": JPEG})
    assert "line 2" in str(refusal(data))


def bomb() -> bytes:
    """A real zip bomb: 1 GiB of zeros, deflated to about 1 MB, written in streaming chunks."""
    buffer = io.BytesIO()
    chunk = bytes(1 << 20)
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("alice/1.jpg", "w", force_zip64=True) as entry,
    ):
        for _ in range(1024):
            entry.write(chunk)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    return bomb()


@pytest.fixture
def small_central(central_settings: CentralSettings) -> Iterator[Central]:
    yield from start_central(replace(central_settings, max_zip_bytes=1_500_000, max_zip_entries=50))


BAD_BODIES: dict[str, tuple[Callable[[bytes], bytes], int, str]] = {
    "not_a_zip": (lambda _: os.urandom(5000), 422, "bad_archive"),
    "truncated": (lambda _: build_zip({"a/1.jpg": JPEG * 50})[:-30], 422, "bad_archive"),
    "traversal": (lambda _: build_zip({"../a/1.jpg": JPEG}), 422, "unsafe_archive"),
    "symlink": (lambda _: symlink_zip(), 422, "unsafe_archive"),
    "encrypted": (
        lambda _: patched(build_zip({"a/1.jpg": JPEG}), b"PK\x01\x02", 8, 1),
        422,
        "encrypted_archive",
    ),
    "zip_bomb": (lambda bomb: bomb, 422, "zip_bomb"),
    "too_big": (lambda _: build_zip({"a/1.jpg": os.urandom(1_600_000)}), 413, "payload_too_large"),
    "too_many": (lambda _: build_zip({f"p{i}/1.jpg": JPEG for i in range(51)}), 413, "too_many_entries"),
    "no_photos": (lambda _: build_zip({"a/1.txt": b"x"}), 422, "empty_archive"),
    "bzip2": (lambda _: build_zip({"a/1.jpg": JPEG}, zipfile.ZIP_BZIP2), 422, "unsupported_compression"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_archive_bad_upload_gets_4xx_and_leaves_nothing(
    small_central: Central, zip_bomb: bytes, case: str
) -> None:
    make, status, code = BAD_BODIES[case]
    response = post_zip(small_central, make(zip_bomb))
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and response.json()["message"]
    assert job_rows(small_central) == 0
    assert list(small_central.client.app.state.runtime.store.list("jobs/")) == []


def test_archive_other_content_type_is_415(central: Central) -> None:
    response = central.client.post(
        JOBS, content=b"{}", headers={**central.admin, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/zip" in response.json()["message"]


def test_archive_multipart_without_the_archive_field_is_refused(central: Central) -> None:
    files = {"file": ("batch.zip", build_zip({"a/1.jpg": JPEG}), "application/zip")}
    response = central.client.post(JOBS, files=files, headers=central.admin)
    assert response.status_code == 422
    assert "'archive'" in response.json()["message"]
    assert job_rows(central) == 0


def test_archive_multipart_with_too_many_parts_is_a_clear_4xx(central: Central) -> None:
    """The parser's part limit (16) is a client error naming the body, not a 500 (found by the API fuzz)."""
    files = [(f"field{i}", (f"{i}.txt", b"x", "text/plain")) for i in range(20)]
    response = central.client.post(JOBS, files=files, headers=central.admin)
    assert response.status_code in {400, 422}, response.text
    assert response.json()["code"] == "bad_multipart"
    assert "cannot be parsed" in response.json()["message"]
    assert job_rows(central) == 0
