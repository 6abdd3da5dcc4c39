"""The summary printed when the demo ends: events per site, who was recognised where, the
enrollment-to-matchable latency, frames per second per edge, and where to look next."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from demo.cast import ENROLLED, NOT_ENROLLED, SITES
from demo.live import Tally


@dataclass(frozen=True, slots=True)
class Expected:
    """What the run must show: these people recognised at both sites, and (`unknown`) an unknown face at
    each. It follows who is enrolled now: once someone enrolls Eileen Collins (the console's walkthrough,
    docs/demo.md), she is expected recognised and no face is left to come out unknown."""

    people: tuple[str, ...] = tuple(person.name for person in ENROLLED)
    unknown: bool = True


def expected_now(enrolled: Collection[str]) -> Expected:
    """The expectations given the names of the people enrolled in the demo's gallery now."""
    if NOT_ENROLLED in enrolled:
        return Expected((*Expected().people, NOT_ENROLLED), unknown=False)
    return Expected()


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
    expected: Expected = field(default_factory=Expected)

    def missing(self) -> list[tuple[str, str]]:
        """(site, person) pairs of enrolled people the stream never showed recognised at that site."""
        return missing(self.tally, self.expected)

    def expectations_met(self) -> bool:
        """Every enrolled person recognised at both sites, and an unknown face reported at each."""
        return expectations_met(self.tally, self.expected)


def missing(tally: Tally, expected: Expected) -> list[tuple[str, str]]:
    """(site, person) pairs of expected people the stream has not shown recognised at that site yet."""
    with tally.lock:
        return [
            (site.id, name)
            for site in SITES
            for name in expected.people
            if name not in tally.people_per_site.get(site.id, set())
        ]


def expectations_met(tally: Tally, expected: Expected) -> bool:
    """Every expected person recognised at both sites, and (when expected) an unknown face at each."""
    unknown_ok = not expected.unknown or all(tally.unknown_per_site[site.id] > 0 for site in SITES)
    return not missing(tally, expected) and unknown_ok


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
    if summary.expected.unknown:
        say(
            f"  ({NOT_ENROLLED} is the one person on camera who was never enrolled; Barack Obama was enrolled"
        )
    else:
        say(f"  ({NOT_ENROLLED} was enrolled since the first run: no face on camera is unknown; Barack Obama")
        say("   was enrolled")
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
        unknown = "; unknown faces were reported at both" if summary.expected.unknown else ""
        say(f"  every enrolled person was recognised at both sites{unknown}")
    else:
        gaps = ", ".join(f"{who} at {site}" for site, who in missing) or "none"
        say(f"  not seen recognised: {gaps}; unknown per site: {dict(tally.unknown_per_site)}")
    say("")
    for what, url in summary.urls.items():
        say(f"  {what:<24} {url}")
    say(
        f"  admin API key in {summary.admin_key_file} (paste it into the console's sign-in, or send it as "
        "'Authorization: Bearer <key>')"
    )
