"""The enroll command's reports: the terminal's progress bar (counts, ETA) and the piped JSON Lines."""

from __future__ import annotations

import io
import json

from central.enrollment.jobs_progress import JsonLines, ProgressBar, bar_line, eta, reporter

JOB = {"id": "j1", "status": "queued", "total": 4, "people": 2, "skipped": [{"entry": "x.txt"}]}


def state(processed: int, accepted: int, rejected: int, status: str = "running") -> dict[str, object]:
    return {"status": status, "processed": processed, "total": 4, "accepted": accepted,
            "rejected": rejected, "error": None}  # fmt: skip


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eta_is_unknown_before_the_first_photo_then_follows_the_rate() -> None:
    assert eta(5.0, 0, 10) == "?"
    assert eta(30.0, 3, 10) == "1:10"
    assert eta(30.0, 10, 10) == "0:00"


def test_bar_line_shows_counts_share_and_eta() -> None:
    assert bar_line(1, 4, 1, 0, 10.0) == (
        "[########----------------------] 1/4 photos  25%  1 accepted  0 refused  ETA 0:30"
    )


def test_progress_bar_redraws_in_place_and_lists_refusals_above_it() -> None:
    now = [100.0]
    out = Terminal()
    bar = ProgressBar(out, clock=lambda: now[0])
    bar.job(JOB)
    now[0] += 10
    bar.result("j1", {"status": "rejected", "reason": "no_face", "external_id": "bob", "filename": "1.jpg"})
    bar.progress("j1", state(2, 1, 1))
    bar.done("j1", state(4, 3, 1, "done"))
    text = out.getvalue()
    assert "job j1: 4 photos of 2 people, 1 entries skipped\n" in text
    assert "refused bob/1.jpg: no face\n" in text
    assert "\r[###############---------------] 2/4 photos  50%  1 accepted  1 refused  ETA 0:10" in text
    assert text.endswith("4/4 photos 100%  3 accepted  1 refused  ETA 0:00\njob j1 done\n")


def test_reporter_is_json_lines_when_piped_and_a_bar_on_a_terminal() -> None:
    piped = io.StringIO()
    report = reporter(piped)
    assert isinstance(report, JsonLines)
    report.progress("j1", state(1, 1, 0))
    assert json.loads(piped.getvalue()) == {"event": "progress", "job": "j1", "status": "running",
                                            "processed": 1, "total": 4}  # fmt: skip
    assert isinstance(reporter(Terminal()), ProgressBar)
