"""The agent page's per-version charts as inline SVG, with the same numbers as a table.

Drawn on the server (no script, no chart library, nothing fetched): one line per
version in request rate, error rate and P95 latency. Versions differ by dash pattern as
well as colour, each chart carries a text summary for screen readers, and the data
table under the charts holds every point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.api.ui.markup import text, timestamp
from controller.api.ui.rates import Point, Traffic

WIDTH, HEIGHT = 420, 160
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 24
COLOURS = ("#0b57d0", "#a40e26", "#116329", "#7a4a00", "#6e40c9", "#00677f")
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 4", "1 5")


@dataclass(frozen=True)
class Measure:
    slug: str
    title: str
    unit: str
    value: Callable[[Point], float | None]
    floor: float  # the smallest top of the scale, so a quiet line does not fill the chart


MEASURES = (
    Measure("rate", "Requests per second", "req/s", lambda p: p.rate, 1.0),
    Measure(
        "errors",
        "Error rate (answers 5xx)",
        "%",
        lambda p: None if p.error_ratio is None else 100 * p.error_ratio,
        5.0,
    ),
    Measure(
        "latency",
        "Latency P95",
        "ms",
        lambda p: None if p.p95 is None else 1000 * p.p95,
        10.0,
    ),
)


def section(traffic: Traffic) -> str:
    """The "Traffic by version" section for one agent."""
    series, times, interval = traffic.series, traffic.times, traffic.interval
    span = times[-1] - times[0] if times else 0.0
    window = f"{span / 60:.0f} min" if span >= 120 else f"{span:.0f} s"
    source = (
        f"<p class=muted>From {text(traffic.source)} (<code>shipyard_agent_requests_total</code>, "
        f"<code>shipyard_agent_request_duration_seconds</code>), sampled every "
        f"{interval:g} s; the last {text(window)}.</p>"
    )
    heading = '<h2 id="traffic">Traffic by version</h2>'
    if len(times) < 2 or not series:
        return f"{heading}{source}<p>No agent requests counted in this window.</p>"
    styles = {version: index % len(COLOURS) for index, version in enumerate(series)}
    figures = "".join(_chart(measure, series, times, styles) for measure in MEASURES)
    return f"{heading}{source}{_legend(styles)}<div class=charts>{figures}</div>{_table(series)}"


def _legend(styles: dict[str, int]) -> str:
    items = "".join(
        f'<li><svg width="28" height="10" aria-hidden="true"><line x1="0" y1="5" x2="28" y2="5"'
        f'{_stroke(index)} stroke-width="2.5"/></svg> <code>{text(version)}</code></li>'
        for version, index in styles.items()
    )
    return f'<ul class="legend" aria-label="Versions">{items}</ul>'


def _stroke(index: int) -> str:
    dash = f' stroke-dasharray="{DASHES[index]}"' if DASHES[index] else ""
    return f' stroke="{COLOURS[index]}"{dash}'


def _chart(
    measure: Measure,
    series: dict[str, list[Point]],
    times: Sequence[float],
    styles: dict[str, int],
) -> str:
    start, end = times[0], times[-1]
    values = {version: _values(measure, points, times) for version, points in series.items()}
    highest = max([v for line in values.values() for _, v in line if v is not None] + [0.0])
    top = _nice(max(highest, measure.floor))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: float) -> float:
        return LEFT + plot_w * ((moment - start) / (end - start) if end > start else 1.0)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    grid = "".join(
        f'<line x1="{LEFT}" y1="{y(top * f):.1f}" x2="{WIDTH - RIGHT}" y2="{y(top * f):.1f}" '
        f'stroke="#d0d7de"/><text x="{LEFT - 6}" y="{y(top * f) + 4:.1f}" text-anchor="end">'
        f"{_number(top * f)}</text>"
        for f in (0.0, 0.5, 1.0)
    )
    axis = (
        f'<text x="{LEFT}" y="{HEIGHT - 6}">{_clock(start)}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">{_clock(end)} UTC</text>'
    )
    lines = ""
    for version, line in values.items():
        stroke = _stroke(styles[version])
        for segment in _segments(line):
            if len(segment) == 1:  # a lone point between gaps: a dot, or it would not show
                (moment, value), colour = segment[0], COLOURS[styles[version]]
                lines += (
                    f'<circle cx="{x(moment):.1f}" cy="{y(value):.1f}" r="2.5" fill="{colour}"/>'
                )
                continue
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in segment)
            lines += f'<polyline points="{coords}" fill="none" stroke-width="2"{stroke}/>'
    slug = f"chart-{measure.slug}"
    summary = "; ".join(_describe(version, line, measure.unit) for version, line in values.items())
    return (
        f'<figure class="chart"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{slug}-title {slug}-desc" font-size="11" fill="#4f5a66">'
        f'<title id="{slug}-title">{text(measure.title)} ({text(measure.unit)}) by version</title>'
        f'<desc id="{slug}-desc">{text(summary)}</desc>{grid}{axis}{lines}</svg>'
        f"<figcaption>{text(measure.title)} ({text(measure.unit)})</figcaption></figure>"
    )


def _values(
    measure: Measure, points: list[Point], times: Sequence[float]
) -> list[tuple[float, float | None]]:
    """The measure at every sample time from the version's first traffic on: an interval
    without requests is a zero rate and a gap in the error rate and latency (nothing
    was answered to measure)."""
    by_time = {point.time: point for point in points}
    first = points[0].time
    shown: list[tuple[float, float | None]] = []
    for moment in times:
        if moment < first:
            continue
        point = by_time.get(moment)
        if point is not None:
            shown.append((moment, measure.value(point)))
        else:
            shown.append((moment, 0.0 if measure.slug == "rate" else None))
    return shown


def _segments(line: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    segments: list[list[tuple[float, float]]] = [[]]
    for moment, value in line:
        if value is None:
            if segments[-1]:
                segments.append([])
        else:
            segments[-1].append((moment, value))
    return [segment for segment in segments if segment]


def _describe(version: str, line: list[tuple[float, float | None]], unit: str) -> str:
    seen = [value for _, value in line if value is not None]
    if not seen:
        return f"{version}: no data"
    return f"{version}: latest {_number(seen[-1])} {unit}, highest {_number(max(seen))} {unit}"


def _table(series: dict[str, list[Point]]) -> str:
    rows = sorted(
        ((point, version) for version, points in series.items() for point in points),
        key=lambda row: (-row[0].time, row[1]),
    )
    body = "".join(
        f"<tr><td>{timestamp(point.time)}</td><td><code>{text(version)}</code></td>"
        f"<td>{point.requests:g}</td><td>{_number(point.rate)}</td>"
        f"<td>{_number(100 * (point.error_ratio or 0.0))}</td>"
        f"<td>{'—' if point.p95 is None else _number(1000 * point.p95)}</td></tr>"
        for point, version in rows
    )
    return (
        '<details class="chart-data"><summary>The charts\' numbers as a table</summary>'
        '<div class="scroll"><table><caption>Intervals with requests, newest first</caption>'
        "<thead><tr><th scope=col>Interval end</th><th scope=col>Version</th>"
        "<th scope=col>Requests</th><th scope=col>Requests/s</th><th scope=col>Errors %</th>"
        f"<th scope=col>P95 ms</th></tr></thead><tbody>{body}</tbody></table></div></details>"
    )


def _nice(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^n at or above `value`."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(step) * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(moment))
