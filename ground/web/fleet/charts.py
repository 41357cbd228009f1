"""The dashboard's charts: inline SVG drawn on the server. No chart library, nothing
fetched from outside, and they print and read the same without JavaScript."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from ground.web.fleet.sources import Sample
from ground.web.format import hm, hour, number

GAP = timedelta(minutes=20)  # no sample for longer: the chart's line is broken, not bridged


@dataclass(frozen=True)
class Chart:
    title_fr: str
    title_en: str
    unit: str
    svg: Markup


# Drawn narrow and scaled up, not wide and scaled down: on a phone (a 380 px column) the
# axis text stays about 11 px tall; on a laptop it grows, which reads fine.
W, H = 480, 230
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 14, 30
MIN_SPAN = timedelta(hours=2)  # a chart shows at least this, even just after a start
COLOURS = ["#0b4f9c", "#8a3ffc", "#b35c00", "#00695c"]


def _thin(points: list[tuple[datetime, float | None, str | None]], start: datetime,
          end: datetime, columns: int) -> list[tuple[datetime, float | None, str | None]]:
    """At most a min and a max per pixel column, in time order: excursions survive."""
    if len(points) <= 2 * columns:
        return points
    span = (end - start).total_seconds() or 1.0
    buckets: dict[int, list[tuple[datetime, float | None, str | None]]] = {}
    for p in points:
        buckets.setdefault(int((p[0] - start).total_seconds() / span * columns), []).append(p)
    out: list[tuple[datetime, float | None, str | None]] = []
    for key in sorted(buckets):
        group = buckets[key]
        valued = [p for p in group if p[1] is not None]
        if len(valued) < len(group):
            out.append(next(p for p in group if p[1] is None))  # keep the break
        if valued:
            lo = min(valued, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
            hi = max(valued, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
            out.extend(sorted({lo, hi}, key=lambda p: p[0]))
    return out


def _nice_step(span: float) -> float:
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def svg_chart(chart_id: str, title_fr: str, title_en: str, unit: str,
              series: list[tuple[str, list[Sample]]], start: datetime, end: datetime,
              zone: ZoneInfo, *, domain: tuple[float, float], fixed: bool = False,
              band: tuple[float, float] | None = None, band_label: str | None = None,
              limit: float | None = None) -> Markup:
    """A line chart from `start` to `end` (24 h, or from shortly before the first sample
    when the data is younger), with the band to stay in shaded and a limit dashed.

    Flagged samples break the line; so do gaps of more than 20 min (a bus switched off
    overnight is not "flat"). The <desc> says the figures, for screen readers.
    """
    values = [v for _, pts in series for _, v, _ in pts if v is not None]
    lo, hi = domain
    if values and not fixed:
        lo, hi = min(lo, math.floor(min(values))), max(hi, math.ceil(max(values)))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = (end - start).total_seconds()

    def x(t: datetime) -> float:
        return LEFT + max(0.0, min(1.0, (t - start).total_seconds() / span)) * pw

    def y(v: float) -> float:
        return TOP + (1 - (v - lo) / ((hi - lo) or 1)) * ph

    e = escape
    parts = [
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{e(title_fr)} ({e(unit)}), {e(_span_fr(start, end, zone))}'
        f' · {e(title_en)}</title>',
    ]
    desc = _describe(series, unit, band, zone)
    parts.append(f'<desc id="{chart_id}-d">{e(desc)}</desc>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="plot"/>')
    if band is not None:
        b_lo, b_hi = max(band[0], lo), min(band[1], hi)
        parts.append(f'<rect class="band" x="{LEFT}" y="{y(b_hi):.1f}" width="{pw}" '
                     f'height="{max(0.0, y(b_lo) - y(b_hi)):.1f}"/>')
        label = band_label or f"{number(band[0], 0)}–{number(band[1], 0)} {unit}"
        parts.append(f'<text class="band-label" x="{W - RIGHT - 4}" y="{y(b_hi) + 14:.1f}" '
                     f'text-anchor="end">{e(label)}</text>')
    step = _nice_step(hi - lo)
    tick = math.ceil(lo / step) * step
    while tick <= hi + 1e-9:
        ty = y(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{ty:.1f}" '
                     f'y2="{ty:.1f}"/><text class="axis" x="{LEFT - 6}" y="{ty + 4:.1f}" '
                     f'text-anchor="end">{e(number(tick, 0 if step >= 1 else 1))}</text>')
        tick += step
    # hour marks every 3 h (every hour on a short chart), local time
    every = 3 if end - start > timedelta(hours=8) else 1
    local_start = start.astimezone(zone)
    mark = datetime.combine(local_start.date(), time(local_start.hour), zone)
    mark += timedelta(hours=(every - local_start.hour % every) % every
                      or (every if mark < local_start else 0))  # fmt: skip
    while mark <= end:
        tx = x(mark)
        parts.append(f'<line class="grid" x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP}" '
                     f'y2="{TOP + ph}"/><text class="axis" x="{tx:.1f}" y="{H - 8}" '
                     f'text-anchor="middle">{hour(mark, zone)}</text>')
        mark += timedelta(hours=every)
    if limit is not None and lo <= limit <= hi:
        parts.append(f'<line class="limit" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(limit):.1f}" '
                     f'y2="{y(limit):.1f}"/>')
    for i, (name, points) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        runs: list[list[str]] = [[]]
        previous: datetime | None = None
        outside: list[tuple[float, float]] = []
        for ts, v, _ in _thin(points, start, end, pw):
            if v is None or (previous is not None and ts - previous > GAP):
                runs.append([])
            if v is not None:
                runs[-1].append(f"{x(ts):.1f},{y(v):.1f}")
                if band is not None and not band[0] <= v <= band[1] and len(outside) < 400:
                    outside.append((x(ts), y(v)))
            previous = ts
        for run in runs:
            if len(run) == 1:  # a lone sample is a dot, not an invisible line
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="point" cx="{cx}" cy="{cy}" r="2.5" '
                             f'fill="{colour}"/>')
            elif run:
                parts.append(f'<polyline class="line" data-series="{e(name)}" '
                             f'stroke="{colour}" points="{" ".join(run)}"/>')
        for ox, oy in outside:
            parts.append(f'<circle class="out" cx="{ox:.1f}" cy="{oy:.1f}" r="3"/>')
        if len(series) > 1:
            parts.append(f'<text class="legend" x="{LEFT + 8 + 90 * i}" y="{TOP + 14}" '
                         f'fill="{colour}">{e(name)}</text>')
    if not values:
        parts.append(f'<text class="empty" x="{LEFT + pw / 2}" y="{TOP + ph / 2}" '
                     f'text-anchor="middle">Aucune mesure sur 24 h · no data in 24 h</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def window(series: list[list[Sample]], start: datetime, end: datetime) -> datetime:
    """Where a chart starts: at `start`, or a little before the first sample when the data
    is younger (a bus started an hour ago), so that it is not squeezed into the last pixels."""
    first = min((pts[0][0] for pts in series if pts), default=None)
    if first is None:
        return start
    return max(start, min(first - timedelta(minutes=15), end - MIN_SPAN))


def _span_fr(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    if end - start >= timedelta(hours=23, minutes=59):
        return "24 h"
    return f"depuis {hm(start, zone)} · since {hm(start, zone)}"


def _describe(series: list[tuple[str, list[Sample]]], unit: str,
              band: tuple[float, float] | None, zone: ZoneInfo) -> str:
    texts = []
    for name, points in series:
        valued = [(t, v) for t, v, _ in points if v is not None]
        if not valued:
            continue
        t_last, v_last = valued[-1]
        vs = [v for _, v in valued]
        text = (f"{name} : dernière valeur {number(v_last)} {unit} à {hm(t_last, zone)}, "
                f"min {number(min(vs))}, max {number(max(vs))}")
        if band is not None:
            out = sum(1 for v in vs if not band[0] <= v <= band[1])
            text += f", {out} mesure(s) hors plage"
        texts.append(text)
    return " ; ".join(texts) or "Aucune mesure sur 24 h"
