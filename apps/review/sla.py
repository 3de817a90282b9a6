"""Service-level figures for the supervisor dashboard, and their chart.

Rules:

- A case breaches its SLA when it is still not closed after ``due_at``, or
  when it was closed after ``due_at``.
- Open (not closed) cases are counted in age buckets by time since arrival:
  ``AGE_BUCKETS`` (upper bounds in minutes, the last one open-ended).
- The chart is a server-rendered SVG: stacked bars per age bucket, within SLA
  and breached, one group per case kind.  No JavaScript, no external assets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from npusuite.review.models import KINDS, Case, User, utcnow

#: (label, upper bound in minutes); None = no bound.
AGE_BUCKETS: list[tuple[str, float | None]] = [("< 15 min", 15), ("15-60 min", 60), ("1-4 h", 240),
                                               ("4-24 h", 1440), ("> 24 h", None)]


@dataclass
class KindStats:
    kind: str
    open_total: int = 0
    in_review: int = 0
    escalated: int = 0
    breached_open: int = 0
    closed_24h: int = 0
    closed_late_24h: int = 0
    #: per age bucket: (within SLA, breached)
    buckets: list[list[int]] = field(default_factory=lambda: [[0, 0] for _ in AGE_BUCKETS])
    oldest_open_min: float | None = None


@dataclass
class Dashboard:
    at: datetime
    kinds: list[KindStats]
    #: (user name, cases held now)
    workload: list[tuple[str, int]]
    breaches: list[Case]


def _bucket(age_min: float) -> int:
    for i, (_label, bound) in enumerate(AGE_BUCKETS):
        if bound is None or age_min < bound:
            return i
    return len(AGE_BUCKETS) - 1


def dashboard(db: Session, now: datetime | None = None, breach_list_limit: int = 50) -> Dashboard:
    now = now or utcnow()
    stats = {k: KindStats(k) for k in KINDS}
    rows = db.execute(select(Case.kind, Case.status, Case.created_at, Case.due_at).where(Case.status != "closed"))
    for kind, status, created_at, due_at in rows:
        s = stats[kind]
        s.open_total += 1
        s.in_review += status == "in_review"
        s.escalated += status == "escalated"
        age_min = (now - created_at).total_seconds() / 60
        breached = due_at < now
        s.breached_open += breached
        s.buckets[_bucket(age_min)][1 if breached else 0] += 1
        s.oldest_open_min = max(s.oldest_open_min or 0.0, age_min)
    since = now - timedelta(hours=24)
    for kind, closed_at, due_at in db.execute(
            select(Case.kind, Case.closed_at, Case.due_at).where(Case.status == "closed", Case.closed_at >= since)):
        stats[kind].closed_24h += 1
        stats[kind].closed_late_24h += closed_at > due_at
    workload = [(name, n) for name, n in db.execute(
        select(User.username, func.count(Case.id)).join(Case, Case.assignee_id == User.id)
        .where(Case.status == "in_review").group_by(User.username).order_by(func.count(Case.id).desc()))]
    breaches = list(db.scalars(select(Case).where(Case.status != "closed", Case.due_at < now)
                               .order_by(Case.due_at).limit(breach_list_limit)).unique())
    return Dashboard(now, list(stats.values()), workload, breaches)


_COLORS = {"ok": "#3b82f6", "breach": "#dc2626"}


def chart_svg(board: Dashboard, width_px: int = 720, height_px: int = 260) -> str:
    """Stacked bars (within SLA / breached) of open cases per age bucket, one panel per kind."""
    pad_l, pad_b, pad_t = 40, 46, 28
    panel_w = (width_px - pad_l) / len(board.kinds)
    plot_h = height_px - pad_b - pad_t
    highest = max([sum(b) for k in board.kinds for b in k.buckets] + [1])
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
    for k_i, kind in enumerate(board.kinds):
        x0 = pad_l + k_i * panel_w
        parts.append(f'<text class="t" x="{x0 + panel_w / 2:.1f}" y="16" text-anchor="middle">'
                     f'{kind.kind} ({kind.open_total} open)</text>')
        bar_w = (panel_w - bar_gap * (len(AGE_BUCKETS) + 1)) / len(AGE_BUCKETS)
        for b_i, (label, _bound) in enumerate(AGE_BUCKETS):
            ok, late = kind.buckets[b_i]
            x = x0 + bar_gap + b_i * (bar_w + bar_gap)
            y = pad_t + plot_h
            for value, color, name in ((ok, _COLORS["ok"], "within SLA"), (late, _COLORS["breach"], "breached")):
                h = plot_h * value / top
                if value:
                    parts.append(f'<rect x="{x:.1f}" y="{y - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                                 f'fill="{color}" rx="2"><title>{kind.kind} {label}: {value} {name}</title></rect>')
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
