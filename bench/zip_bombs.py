"""Zip bombs against a real central, side by side with a normal zip of the same photos: what central
answers and its peak memory (`python -m bench.zip_bombs`).

    python -m bench.zip_bombs [--rounds 3] [--bomb-mib 1024]

Starts `facegate central serve` (one process) on a scratch database of the local PostgreSQL, a folder
object store and, when it answers, the local Redis. Each archive holds the same five sample photos
(one person folder each); the bombs add one entry:

- normal: the photos alone, deflated; the job is waited for until done;
- bzip2 bomb / LZMA bomb: plus a bzip2 (LZMA) entry of `--bomb-mib` MiB of zeros whose directory
  declares 4 KiB, so that neither the per-entry nor the whole-archive ratio check sees it (Python's
  zipfile unpacks a whole bzip2 block, or LZMA chunk, however few bytes are read);
- deflate bomb: plus a deflate entry of `--bomb-mib` MiB of zeros, its true size in the directory;
- lying deflate bomb: the same, its directory declaring 4 KiB (the plan cannot see it; unpacking
  must stop at the declared size);
- many small deflate entries: 200 entries of 1 MB of zeros each (under the per-entry ratio check).

Peak memory: central's VmHWM from /proc/<pid>/status, reset before each upload by writing 5 to
/proc/<pid>/clear_refs, together with a 5 ms sampler of VmRSS; the peak is measured until the answer
comes and, for an accepted archive, until its job is done or failed. Figures are medians over
`--rounds` (each round with new people, so the normal archive is enrolled afresh every time).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.central_rig import central_process, scratch_services
from central.auth.repository import create_key_sync
from central.db import migrate
from common.models.fetch import fetch_models, models_dir
from demo.sample_faces import fetch_samples

MIB = 1024 * 1024
DECLARED = 4096
PHOTOS = ("obama", "obama2", "biden", "grace_hopper", "obama3")


@dataclass
class Outcome:
    status: int
    code: str
    seconds: float
    before_mb: float
    peak_mb: float
    job: str = ""


@dataclass
class Memory:
    """Peak RSS of process `pid`: VmHWM (reset by clear_refs) and a VmRSS sampler, whichever is higher."""

    pid: int
    peak_kb: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def field_kb(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise SystemExit(f"/proc/{self.pid}/status has no {name}")

    @contextmanager
    def watch(self) -> Iterator[None]:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.peak_kb, self.stop = self.field_kb("VmRSS"), threading.Event()
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            self.stop.set()
            sampler.join()
            self.peak_kb = max(self.peak_kb, self.field_kb("VmHWM"))

    def _sample(self) -> None:
        while not self.stop.wait(0.005):
            self.peak_kb = max(self.peak_kb, self.field_kb("VmRSS"))


def photos(prefix: str) -> dict[str, bytes]:
    """The sample photos, one person folder each (`prefix` makes the people new in every round, so every
    round enrols them afresh)."""
    samples = fetch_samples()
    return {f"{prefix}{name}/{name}.jpg": samples[name].path.read_bytes() for name in PHOTOS}


def archive(entries: dict[str, bytes], bomb: tuple[str, int, int] | None = None) -> bytes:
    """The photos deflated, plus optionally a `bomb` entry (name, compression method, MiB of zeros)
    written through zipfile's own compressor."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in entries.items():
            out.writestr(name, data)
        if bomb is not None:
            name, method, mib = bomb
            chunk = bytes(MIB)
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = method
            with out.open(info, "w") as entry:
                for _ in range(mib):
                    entry.write(chunk)
    return buffer.getvalue()


def declared_small(data: bytes, member: str) -> bytes:
    """`data` with `member`'s directory (local and central records) declaring DECLARED bytes of zeros:
    the size and CRC-32 of what a reader stopping there would see."""
    out, name, crc = bytearray(data), member.encode(), zlib.crc32(bytes(DECLARED))
    for signature, crc_at, size_at, name_at in ((b"PK\x03\x04", 14, 22, 30), (b"PK\x01\x02", 16, 24, 46)):
        at = out.find(signature)
        while at >= 0:
            if out[at + name_at : at + name_at + len(name)] == name:
                struct.pack_into("<I", out, at + crc_at, crc)
                struct.pack_into("<I", out, at + size_at, DECLARED)
            at = out.find(signature, at + 4)
    return bytes(out)


def bombs(base: dict[str, bytes], mib: int) -> dict[str, bytes]:
    many = {f"zeros-{n}/{n}.jpg": bytes(1_000_000) for n in range(200)}
    return {
        "normal": archive(base),
        "bzip2 bomb": declared_small(archive(base, ("bomb/b.jpg", zipfile.ZIP_BZIP2, mib)), "bomb/b.jpg"),
        "LZMA bomb": declared_small(archive(base, ("bomb/l.jpg", zipfile.ZIP_LZMA, mib)), "bomb/l.jpg"),
        "deflate bomb": archive(base, ("bomb/d.jpg", zipfile.ZIP_DEFLATED, mib)),
        "lying deflate bomb": declared_small(
            archive(base, ("bomb/d.jpg", zipfile.ZIP_DEFLATED, mib)), "bomb/d.jpg"
        ),
        "many small deflate entries": archive({**base, **many}),
    }


def upload(client: httpx.Client, memory: Memory, body: bytes) -> Outcome:
    start, before = time.perf_counter(), memory.field_kb("VmRSS") / 1024
    with memory.watch():
        response = client.post(
            "/api/v1/enrollment-jobs", content=body, headers={"Content-Type": "application/zip"}
        )
        answer = response.json()
        job = ""
        if response.status_code == 202:
            while True:
                state = client.get(f"/api/v1/enrollment-jobs/{answer['id']}", params={"results_limit": 1000})
                job_state = state.json()
                if job_state["status"] in {"done", "failed"}:
                    break
                time.sleep(0.05)
            reasons = sorted({r["reason"] or r["status"] for r in job_state["results"]})
            job = f"job {job_state['status']}: {job_state['accepted']} accepted, {', '.join(reasons)}"
    seconds = time.perf_counter() - start
    return Outcome(response.status_code, answer.get("code", ""), seconds, before, memory.peak_kb / 1024, job)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zip_bombs", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="uploads of each archive (default: 3)")
    parser.add_argument("--bomb-mib", type=int, default=1024, help="MiB a bomb unpacks to (default: 1024)")
    args = parser.parse_args()
    fetch_models(models_dir())
    results: dict[str, list[Outcome]] = {}
    sizes: dict[str, int] = {}
    with ExitStack() as stack:
        dsn, redis_url = stack.enter_context(scratch_services())
        storage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-store-")))
        migrate(dsn)
        with psycopg.connect(dsn) as conn:
            key = create_key_sync(conn, "bench", "admin").display
        url, pid = stack.enter_context(central_process(dsn, redis_url, storage))
        client = stack.enter_context(
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600.0)
        )
        memory = Memory(pid)
        idle_mb = memory.field_kb("VmRSS") / 1024
        for round_ in range(args.rounds):
            for name, body in bombs(photos(f"r{round_}-"), args.bomb_mib).items():
                sizes[name] = len(body)
                results.setdefault(name, []).append(upload(client, memory, body))
    report(args, sizes, results, idle_mb)
    return 0


def report(
    args: argparse.Namespace, sizes: dict[str, int], results: dict[str, list[Outcome]], idle_mb: float
) -> None:
    print(f"central idle after start-up: {idle_mb:.0f} MB RSS; bombs unpack to {args.bomb_mib} MiB; "
          f"{args.rounds} rounds, medians; {os.cpu_count()} CPUs")  # fmt: skip
    print(
        "| archive | zip bytes | answer | job | seconds | RSS before (MB) | peak RSS (MB) | peak / normal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    normal = statistics.median(o.peak_mb for o in results["normal"])
    for name, outcomes in results.items():
        first = outcomes[0]
        answer = f"{first.status} {first.code}".strip()
        peak = statistics.median(o.peak_mb for o in outcomes)
        seconds = statistics.median(o.seconds for o in outcomes)
        before = statistics.median(o.before_mb for o in outcomes)
        print(f"| {name} | {sizes[name]} | {answer} | {first.job or '-'} | {seconds:.2f} | {before:.0f} | "
              f"{peak:.0f} | {peak / normal:.2f} |")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
