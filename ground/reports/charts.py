"""The report's charts: horizontal bars per commune, as SVG that WeasyPrint draws into the
PDF (vector, so it prints sharp and its labels stay text a reader can copy). The
dashboard's charts (ground/web/fleet/charts.py) are time series; these compare a few
figures across communes, which bars read best."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from ground.reports.tables import Cell, Hidden
from ground.web.format import number

WIDTH = 760
LABEL_W, VALUE_W = 190, 56
BAR_H, GAP, TOP = 11, 7, 42


@dataclass(frozen=True)
class Series:
    name: str  # the legend's, French / English
    colour: str
    values: Sequence[Cell]


def bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One group of bars per label (a commune), one bar per series; a hidden count or a
    missing figure draws no bar and says so in place of the number."""
    numbers = [v for s in series for v in s.values if isinstance(v, int | float)]
    top = max(numbers, default=0) or 1
    span = WIDTH - LABEL_W - VALUE_W
    group = len(series) * BAR_H + GAP
    height = TOP + len(labels) * group + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
             'font-family="DejaVu Sans" font-size="10">',
             f'<text x="0" y="12" font-size="12" font-weight="bold">{escape(title)}</text>']
    x = LABEL_W
    for s in series:  # the legend, under the title
        parts.append(f'<rect x="{x}" y="20" width="10" height="10" fill="{s.colour}"/>'
                     f'<text x="{x + 14}" y="29">{escape(s.name)}</text>')
        x += 14 + 7 * len(s.name)
    for i, label in enumerate(labels):
        y = TOP + i * group
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + len(series) * BAR_H / 2 + 4}" '
                     f'text-anchor="end">{escape(label)}</text>')
        for j, s in enumerate(series):
            value = s.values[i]
            by = y + j * BAR_H
            if isinstance(value, int | float):
                w = max(0.0, value / top * span)
                parts.append(f'<rect x="{LABEL_W}" y="{by}" width="{w:.1f}" '
                             f'height="{BAR_H - 2}" fill="{s.colour}"/>')
                text = number(value, 0 if isinstance(value, int) else 1)
            else:
                w, text = 0.0, str(value) if isinstance(value, Hidden) else "—"
            parts.append(f'<text x="{LABEL_W + w + 4:.1f}" y="{by + BAR_H - 3}">'
                         f'{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
