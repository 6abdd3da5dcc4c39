"""The summary printed when the demo ends: events per site, who was recognised where, the
enrollment-to-matchable latency, frames per second per edge, and where to look next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from demo.cast import ENROLLED, NOT_ENROLLED, SITES
from demo.live import Tally


@dataclass
class Summary:
    tally: Tally
    elapsed_s: float
    fps: dict[str, float]  # edge name -> frames processed per second during the run
    stored: dict[str, int]  # site -> events central stored during the run
    latency_ms: dict[str, float]  # person -> enrollment response to matchable on both edges
    latency_measured_now: bool
    interrupted: bool
    urls: dict[str, str]
    admin_key_file: Path

    def missing(self) -> list[tuple[str, str]]:
        """(site, person) pairs of enrolled people the stream never showed recognised at that site."""
        return missing(self.tally)

    def expectations_met(self) -> bool:
        """Every enrolled person recognised at both sites, and an unknown face reported at each."""
        return expectations_met(self.tally)


def missing(tally: Tally) -> list[tuple[str, str]]:
    """(site, person) pairs of enrolled people the stream has not shown recognised at that site yet."""
    with tally.lock:
        return [
            (site.id, person.name)
            for site in SITES
            for person in ENROLLED
            if person.name not in tally.people_per_site.get(site.id, set())
        ]


def expectations_met(tally: Tally) -> bool:
    """Every enrolled person recognised at both sites, and an unknown face reported at each."""
    return not missing(tally) and all(tally.unknown_per_site[site.id] > 0 for site in SITES)


def print_summary(summary: Summary, say: Callable[[str], None]) -> None:
    tally = summary.tally
    say("")
    stopped = ", interrupted" if summary.interrupted else ""
    say(f"== summary ({summary.elapsed_s:.0f} s of live events{stopped})")
    say(f"  {'site':<6} {'events':>6} {'stored':>6} {'unknown':>7}  recognised (best score)")
    for site in SITES:
        people = sorted(tally.people_per_site.get(site.id, set()))
        best = ", ".join(f"{who} ({tally.best_score.get((site.id, who), 0):.2f})" for who in people) or "-"
        say(
            f"  {site.id:<6} {tally.per_site[site.id]:>6} {summary.stored.get(site.id, 0):>6} "
            f"{tally.unknown_per_site[site.id]:>7}  {best}"
        )
    say(f"  ({NOT_ENROLLED} is the one person on camera who was never enrolled; Barack Obama was enrolled")
    say("   from obama.jpg and is seen in obama2.jpg at hq and obama3.jpg at north)")
    if summary.latency_ms:
        values = sorted(summary.latency_ms.values())
        when = "this run" if summary.latency_measured_now else "measured when they were enrolled, first run"
        say(
            f"  enrollment to matchable on both edges: median {values[len(values) // 2]:.0f} ms, "
            f"max {values[-1]:.0f} ms ({when})"
        )
    for edge, fps in summary.fps.items():
        say(f"  {edge}: {fps:.1f} frames/s processed")
    missing = summary.missing()
    if summary.expectations_met():
        say("  every enrolled person was recognised at both sites; unknown faces were reported at both")
    else:
        gaps = ", ".join(f"{who} at {site}" for site, who in missing) or "none"
        say(f"  not seen recognised: {gaps}; unknown per site: {dict(tally.unknown_per_site)}")
    say("")
    for what, url in summary.urls.items():
        say(f"  {what:<24} {url}")
    say(f"  admin API key in {summary.admin_key_file} (send it as 'Authorization: Bearer <key>')")
