"""The demo's expectations follow who is enrolled now: after Eileen Collins is enrolled (through the
console, docs/demo.md), she must be recognised and no face is left to come out unknown."""

from __future__ import annotations

from demo.cast import ENROLLED, NOT_ENROLLED, SITES
from demo.live import Tally
from demo.summary import Expected, expectations_met, expected_now


def seen(people: list[str], unknown: bool) -> Tally:
    tally = Tally()
    for site in SITES:
        for name in people:
            tally.add(site.id, name, 0.9)
        if unknown:
            tally.add(site.id, None, None)
    return tally


def test_expected_now_without_eileen_wants_the_cast_and_an_unknown_face() -> None:
    expected = expected_now({"Barack Obama", "Joe Biden", "Grace Hopper"})
    assert expected == Expected()
    assert expectations_met(seen([p.name for p in ENROLLED], unknown=True), expected)
    assert not expectations_met(seen([p.name for p in ENROLLED], unknown=False), expected)


def test_expected_now_with_eileen_enrolled_wants_her_recognised_and_no_unknown() -> None:
    expected = expected_now({"Barack Obama", "Joe Biden", "Grace Hopper", NOT_ENROLLED})
    assert NOT_ENROLLED in expected.people and not expected.unknown
    assert expectations_met(seen([*(p.name for p in ENROLLED), NOT_ENROLLED], unknown=False), expected)
    assert not expectations_met(seen([p.name for p in ENROLLED], unknown=True), expected)
