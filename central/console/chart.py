"""Events per hour per site as an SVG line chart, drawn on the server (no script, nothing inline but
SVG geometry: colours come from classes in console.css)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WIDTH, HEIGHT, PAD = 720, 200, 30
MAX_SERIES = 8


@dataclass(frozen=True, slots=True)
class Series:
    site: str
    points: str
    """SVG polyline points."""
    total: int
    css: str


@dataclass(frozen=True, slots=True)
class Chart:
    hours: int
    peak: int
    series: list[Series]
    labels: list[tuple[float, str]]
    """(x, label) of a few hours along the axis."""
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def hourly_chart(counts: list[tuple[str, datetime, int]], hours: int, now: datetime | None = None) -> Chart:
    """A chart of `counts` ((site, hour, events)) over the last `hours` hours; the busiest sites first."""
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    per_site: dict[str, list[int]] = {}
    for site, hour, count in counts:
        slot = int((hour.astimezone(UTC) - start).total_seconds() // 3600)
        if 0 <= slot < hours:
            per_site.setdefault(site, [0] * hours)[slot] += count
    ranked = sorted(per_site.items(), key=lambda item: (-sum(item[1]), item[0]))[:MAX_SERIES]
    peak = max((max(values) for _, values in ranked), default=0)
    step = (WIDTH - 2 * PAD) / max(1, hours - 1)

    def y(value: int) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value / peak if peak else 0)

    series = [
        Series(
            site,
            " ".join(f"{PAD + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values)),
            sum(values),
            f"series-{index}",
        )
        for index, (site, values) in enumerate(ranked)
    ]
    labels = [
        (PAD + i * step, (start + timedelta(hours=i)).strftime("%H:00"))
        for i in range(0, hours, max(1, hours // 6))
    ]
    return Chart(hours, peak, series, labels)
