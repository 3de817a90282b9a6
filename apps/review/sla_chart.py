"""The SLA dashboard's chart: a server-rendered SVG of open cases by age, within SLA and breached.

Stacked bars per age bucket (:data:`~npusuite.review.sla.AGE_BUCKETS`), one
panel per team.  No JavaScript, no external assets.
"""

from __future__ import annotations

from html import escape

from npusuite.review.sla import AGE_BUCKETS, Dashboard

_COLORS = {"ok": "#3b82f6", "breach": "#dc2626"}


def chart_svg(board: Dashboard, width_px: int = 720, height_px: int = 260) -> str:
    """Stacked bars (within SLA / breached) of open cases per age bucket, one panel per kind."""
    pad_l, pad_b, pad_t = 40, 46, 28
    panel_w = (width_px - pad_l) / len(board.teams)
    plot_h = height_px - pad_b - pad_t
    highest = max([sum(b) for k in board.teams for b in k.buckets] + [1])
    step = -(-highest // 4)  # whole-number gridlines: four steps of ceil(highest / 4)
    top = step * 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width_px} {height_px}" '
             f'width="100%" class="chart" aria-label="Open cases by age and SLA state">',
             '<style>text{font:11px system-ui,sans-serif;fill:#475569}.t{font-weight:600;fill:#0f172a}</style>']
    for tick in range(0, 5):
        value = step * tick
        y = pad_t + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{pad_l}" x2="{width_px}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.0f}</text>')
    bar_gap = 8
    for k_i, kind in enumerate(board.teams):
        x0 = pad_l + k_i * panel_w
        parts.append(f'<text class="t" x="{x0 + panel_w / 2:.1f}" y="16" text-anchor="middle">'
                     f'{kind.team} ({kind.open_total} open)</text>')
        bar_w = (panel_w - bar_gap * (len(AGE_BUCKETS) + 1)) / len(AGE_BUCKETS)
        for b_i, (label, _bound) in enumerate(AGE_BUCKETS):
            ok, late = kind.buckets[b_i]
            x = x0 + bar_gap + b_i * (bar_w + bar_gap)
            y = pad_t + plot_h
            for value, color, name in ((ok, _COLORS["ok"], "within SLA"), (late, _COLORS["breach"], "breached")):
                h = plot_h * value / top
                if value:
                    parts.append(f'<rect x="{x:.1f}" y="{y - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                                 f'fill="{color}" rx="2"><title>{kind.team} {label}: {value} {name}</title></rect>')
                y -= h
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{pad_t + plot_h + 14}" text-anchor="middle">'
                         f'{escape(label)}</text>')
    legend_y = height_px - 10
    parts.append(f'<rect x="{pad_l}" y="{legend_y - 9}" width="10" height="10" fill="{_COLORS["ok"]}"/>'
                 f'<text x="{pad_l + 14}" y="{legend_y}">within SLA</text>'
                 f'<rect x="{pad_l + 90}" y="{legend_y - 9}" width="10" height="10" fill="{_COLORS["breach"]}"/>'
                 f'<text x="{pad_l + 104}" y="{legend_y}">breached</text>')
    parts.append("</svg>")
    return "".join(parts)
