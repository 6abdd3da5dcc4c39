"""How `facegate central enroll` reports a job: JSON Lines when its output is piped (a program reads
it), a progress bar with counts and an ETA when its output is a terminal (a person watches it).

`reporter(stream)` picks one. Both get the same calls from central/enrollment/jobs_client.py: `job`
once, `result` per photo, `progress` when the counts move, `done` at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

BAR_WIDTH = 30


class Reporter(Protocol):
    def job(self, job: dict[str, Any]) -> None: ...
    def result(self, job_id: str, result: dict[str, Any]) -> None: ...
    def progress(self, job_id: str, state: dict[str, Any]) -> None: ...
    def done(self, job_id: str, state: dict[str, Any]) -> None: ...


class JsonLines:
    """One JSON object a line: `job`, `result`, `progress`, `done` events (the piped format)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()

    def job(self, job: dict[str, Any]) -> None:
        self.emit("job", job=job["id"], status=job["status"], total=job["total"], people=job["people"],
                  skipped=job["skipped"])  # fmt: skip

    def result(self, job_id: str, result: dict[str, Any]) -> None:
        self.emit("result", job=job_id, **result)

    def progress(self, job_id: str, state: dict[str, Any]) -> None:
        self.emit("progress", job=job_id, status=state["status"], processed=state["processed"],
                  total=state["total"])  # fmt: skip

    def done(self, job_id: str, state: dict[str, Any]) -> None:
        self.emit("done", job=job_id, status=state["status"], accepted=state["accepted"],
                  rejected=state["rejected"], error=state["error"])  # fmt: skip


def eta(elapsed_s: float, processed: int, total: int) -> str:
    """`m:ss` left at the rate so far; `?` before the first photo is done."""
    if processed <= 0 or total <= processed:
        return "?" if processed <= 0 else "0:00"
    left = round(elapsed_s / processed * (total - processed))
    return f"{left // 60}:{left % 60:02d}"


def bar_line(processed: int, total: int, accepted: int, rejected: int, elapsed_s: float) -> str:
    """`[#####-----]  12/40 photos  30%  11 accepted  1 refused  ETA 0:42`."""
    share = processed / total if total else 1.0
    filled = round(BAR_WIDTH * share)
    return (
        f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {processed}/{total} photos {share:4.0%}"
        f"  {accepted} accepted  {rejected} refused  ETA {eta(elapsed_s, processed, total)}"
    )


class ProgressBar:
    """A one-line bar redrawn in place; refused photos are printed above it with their reason."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.line = ""
        self.counts = (0, 0, 0, 0)  # processed, total, accepted, rejected

    def _draw(self) -> None:
        processed, total, accepted, rejected = self.counts
        line = bar_line(processed, total, accepted, rejected, self.clock() - self.started)
        self.stream.write("\r" + line + " " * max(0, len(self.line) - len(line)))
        self.stream.flush()
        self.line = line

    def _above(self, text: str) -> None:
        self.stream.write("\r" + " " * len(self.line) + "\r" + text + "\n")
        self._draw()

    def job(self, job: dict[str, Any]) -> None:
        self.started = self.clock()
        self.counts = (0, job["total"], 0, 0)
        skipped = len(job["skipped"])
        self._above(
            f"job {job['id']}: {job['total']} photos of {job['people']} people, {skipped} entries skipped"
        )

    def result(self, job_id: str, result: dict[str, Any]) -> None:
        if result["status"] != "accepted":
            reason = (result.get("reason") or "refused").replace("_", " ")
            self._above(f"  refused {result['external_id']}/{result['filename']}: {reason}")

    def progress(self, job_id: str, state: dict[str, Any]) -> None:
        self.counts = (state["processed"], state["total"], state["accepted"], state["rejected"])
        self._draw()

    def done(self, job_id: str, state: dict[str, Any]) -> None:
        self.counts = (state["processed"], state["total"], state["accepted"], state["rejected"])
        self._draw()
        outcome = state["status"] if not state["error"] else f"{state['status']}: {state['error']}"
        self.stream.write(f"\njob {job_id} {outcome}\n")
        self.stream.flush()


def reporter(stream: TextIO) -> Reporter:
    """A progress bar on a terminal, JSON Lines otherwise."""
    return ProgressBar(stream) if stream.isatty() else JsonLines(stream)
