"""Fuzzing the two upload routes of the real app (hypothesis): mutated real zips and real photos, plus raw
bytes. Never a 5xx; every refusal a 4xx with a code and a message; a good upload after the bad ones is
still enrolled. Fixed seed (derandomize), a max_examples per test and a time budget each."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from demo.sample_faces import SamplePhoto
from devtools.services import PostgresService, RedisService, S3Service
from tests.support.central_app import Central, shared_central
from tests.support.job_archives import post_zip, wait_done

EXAMPLES = 120
BUDGET_S = 8.0
"""Each test stops sending after this long (the remaining examples return at once)."""
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # a fixed seed: the same examples every run
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIELDS = (  # (record signature, offset) of 16- and 32-bit header fields worth breaking
    [(b"PK\x03\x04", off) for off in (4, 6, 8, 26, 28)]  # version, flags, method, name and extra length
    + [(b"PK\x01\x02", off) for off in (8, 10, 28, 30, 32, 34)]  # flags, method, name/extra/comment, disk
    + [(b"PK\x05\x06", off) for off in (8, 10)]  # entry counts
)
WIDE = [(b"PK\x03\x04", 18), (b"PK\x03\x04", 22), (b"PK\x01\x02", 20), (b"PK\x01\x02", 24),
        (b"PK\x01\x02", 42), (b"PK\x05\x06", 12), (b"PK\x05\x06", 16)]  # fmt: skip  # sizes, offsets
ODD = [0, 1, 2, 8, 9, 12, 14, 93, 99, 0x7FFF, 0xFFFF]


@pytest.fixture(scope="module")
def central(
    postgres_server: PostgresService, s3_server: S3Service, redis_server: RedisService, model_dir: Path
) -> Iterator[Central]:
    with shared_central(postgres_server, s3_server, redis_server, model_dir, enroll_workers=1) as started:
        yield started


def real_zip(photo: bytes, method: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("people.csv", "external_id,display_name\nhopper,Grace Hopper\n")
        archive.writestr("hopper/grace.jpg", photo)
    return buffer.getvalue()


def patched(data: bytes, signature: bytes, offset: int, value: int, width: int) -> bytes:
    out, at = bytearray(data), data.find(signature)
    if at >= 0 and at + offset + width <= len(out):
        struct.pack_into(
            "<H" if width == 2 else "<I", out, at + offset, value & (0xFFFF if width == 2 else 0xFFFFFFFF)
        )
    return bytes(out)


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with flipped bytes, cut short, with bytes inserted or a slice repeated, or a header field set
    to an odd value (compression method, sizes, offsets, counts)."""
    size = len(data)
    at = st.integers(0, size - 1)
    flips = st.lists(st.tuples(at, st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda edits: bytes(_flip(bytearray(data), edits))
    )
    cut = at.map(lambda n: data[:n])
    insert = st.tuples(at, st.binary(min_size=1, max_size=64)).map(
        lambda a: data[: a[0]] + a[1] + data[a[0] :]
    )
    repeat = st.tuples(at, at).map(lambda a: data[: max(a)] + data[min(a) : max(a)] + data[max(a) :])
    narrow = st.tuples(st.sampled_from(FIELDS), st.sampled_from(ODD)).map(
        lambda a: patched(data, a[0][0], a[0][1], a[1], 2)
    )
    wide = st.tuples(st.sampled_from(WIDE), st.sampled_from([0, 1, 2000, 0x7FFFFFFF, 0xFFFFFFFF])).map(
        lambda a: patched(data, a[0][0], a[0][1], a[1], 4)
    )
    return st.one_of(flips, cut, insert, repeat, narrow, wide)


def _flip(out: bytearray, edits: list[tuple[int, int]]) -> bytearray:
    for index, value in edits:
        out[index] = value
    return out


def clear_answer(response: Any, ok: int) -> None:
    """`ok`, or a 4xx whose JSON names a code and says what is wrong; never a 5xx."""
    assert response.status_code < 500, response.text
    if response.status_code != ok:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert body["code"] and body["message"], body


class Budget:
    def __init__(self) -> None:
        self.started: float | None = None
        self.sent = 0

    def spent(self) -> bool:
        now = time.monotonic()
        self.started = self.started or now
        if now - self.started > BUDGET_S:
            return True
        self.sent += 1
        return False


def zip_bodies(samples: dict[str, SamplePhoto]) -> st.SearchStrategy[bytes]:
    photo = samples["grace_hopper"].path.read_bytes()
    bases = [real_zip(photo, zipfile.ZIP_STORED), real_zip(photo, zipfile.ZIP_DEFLATED)]
    raw = st.binary(max_size=2048)
    zip_like = st.binary(max_size=512).map(lambda tail: b"PK\x03\x04" + tail)
    return st.one_of(*(mutations(base) for base in bases), raw, zip_like)


def photo_bodies(samples: dict[str, SamplePhoto]) -> st.SearchStrategy[bytes]:
    jpeg = samples["grace_hopper"].path.read_bytes()
    return st.one_of(mutations(jpeg), mutations(jpeg[:4096]), st.binary(max_size=2048))


def test_upload_fuzz_zip_route_never_fails_and_a_good_job_still_runs(
    central: Central, samples: dict[str, SamplePhoto]
) -> None:
    budget = Budget()

    @FUZZ
    @given(body=zip_bodies(samples))
    def upload(body: bytes) -> None:
        if not budget.spent():
            clear_answer(post_zip(central, body), 202)

    upload()
    assert budget.sent >= 10, "the fuzzer hardly ran"
    good = real_zip(samples["biden"].path.read_bytes(), zipfile.ZIP_DEFLATED).replace(b"hopper", b"bidenj")
    response = post_zip(central, good)
    assert response.status_code == 202, response.text
    job = wait_done(central, response.json()["id"], timeout_s=60)
    assert job["status"] == "done" and [r["status"] for r in job["results"]] == ["accepted"], job


def test_upload_fuzz_photo_route_never_fails_and_a_good_photo_still_enrols(
    central: Central, samples: dict[str, SamplePhoto]
) -> None:
    person = central.client.post("/api/v1/people", json={"external_id": "fuzzed"}, headers=central.admin)
    assert person.status_code == 201, person.text
    url = f"/api/v1/people/{person.json()['id']}/photos"
    budget = Budget()
    send: dict[str, Callable[[bytes], Any]] = {
        "file": lambda body: central.client.post(
            url, files={"photos": ("p.jpg", body, "image/jpeg")}, headers=central.admin
        ),
        "raw": lambda body: central.client.post(
            url, content=body, headers={**central.admin, "Content-Type": "multipart/form-data; boundary=x"}
        ),
    }

    @FUZZ
    @given(body=photo_bodies(samples), how=st.sampled_from(sorted(send)))
    def upload(body: bytes, how: str) -> None:
        if not budget.spent():
            clear_answer(send[how](body), 200)

    upload()
    assert budget.sent >= 10, "the fuzzer hardly ran"
    good = send["file"](samples["obama"].path.read_bytes())
    assert good.status_code == 200, good.text
    assert [r["status"] for r in good.json()] == ["accepted"], good.json()
