"""Small charts drawn on the server as inline SVG: no chart library, nothing fetched at run time.

Values are numbers and labels are escaped, so the markup is safe to put in a page as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

from dashboard.campaign_queries import Bucket

WIDTH = 640
HEIGHT = 180
LEFT = 44
BOTTOM = 22
TOP = 10
RIGHT = 8


def sends_chart(buckets: Sequence[Bucket], *, max_bars: int = 60, min_bars: int = 10) -> Markup:
    """Bars of messages per minute: the last ``max_bars`` minutes of sending (at least
    ``min_bars``, so one busy minute is not one wall of colour), gaps as zeros."""
    if not buckets:
        return Markup("")
    end = buckets[-1].start
    start = max(buckets[0].start, end - timedelta(minutes=max_bars - 1))
    start = min(start, end - timedelta(minutes=min_bars - 1))
    counts = {bucket.start: bucket.count for bucket in buckets}
    minutes = int((end - start).total_seconds() // 60) + 1
    series = [
        (start + timedelta(minutes=i), counts.get(start + timedelta(minutes=i), 0))
        for i in range(minutes)
    ]
    peak = max(count for _, count in series) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(series)
    bar_w = max(1.0, slot * 0.8)
    parts = [_frame(peak, "per min")]
    for index, (moment, count) in enumerate(series):
        height = plot_h * count / peak
        x = LEFT + index * slot + (slot - bar_w) / 2
        y = TOP + plot_h - height
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
            f'height="{height:.1f}"><title>{escape(_clock(moment))}: {count:,}</title></rect>'
        )
    parts.extend(_time_labels([moment for moment, _ in series], slot))
    return _svg("Messages sent per minute", parts)


def events_chart(series: Mapping[str, Sequence[Bucket]], *, max_points: int = 72) -> Markup:
    """Lines of opens and clicks per hour over the hours that had any."""
    moments = sorted({bucket.start for buckets in series.values() for bucket in buckets})
    if not moments:
        return Markup("")
    start = max(moments[0], moments[-1] - timedelta(hours=max_points - 1))
    hours = int((moments[-1] - start).total_seconds() // 3600) + 1
    axis = [start + timedelta(hours=i) for i in range(hours)]
    values = {
        kind: [({b.start: b.count for b in buckets}).get(moment, 0) for moment in axis]
        for kind, buckets in series.items()
    }
    peak = max((max(points) for points in values.values() if points), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(axis)
    parts = [_frame(peak, "per hour")]
    for kind, points in values.items():
        coordinates = " ".join(
            f"{LEFT + slot * (i + 0.5):.1f},{TOP + plot_h - plot_h * value / peak:.1f}"
            for i, value in enumerate(points)
        )
        css = "line-opens" if kind == "opened" else "line-clicks"
        if len(points) == 1:
            x, y = coordinates.split(",")
            parts.append(f'<circle class="{css}" cx="{x}" cy="{y}" r="3"></circle>')
        else:
            parts.append(f'<polyline class="{css}" points="{coordinates}"></polyline>')
    parts.extend(_time_labels(axis, slot, hourly=True))
    return _svg("Opens and clicks per hour", parts)


def _frame(peak: int, unit: str) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    return (
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"></line>'
        f'<text x="{LEFT - 6}" y="{TOP + 8}" text-anchor="end">{peak:,}</text>'
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>'
        f'<text x="{LEFT - 6}" y="{TOP + plot_h / 2 + 4:.0f}" text-anchor="end">{unit}</text>'
    )


def _time_labels(moments: Sequence[datetime], slot: float, *, hourly: bool = False) -> list[str]:
    labels = []
    every = max(1, len(moments) // 6)
    for index in range(0, len(moments), every):
        x = LEFT + slot * (index + 0.5)
        text = moments[index].strftime("%d %H:00" if hourly else "%H:%M")
        labels.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{escape(text)}</text>'
        )
    return labels


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _svg(title: str, parts: list[str]) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )
