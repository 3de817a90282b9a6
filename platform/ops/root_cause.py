"""Rank the anomalous components, dependencies ("upstream") first, and name the evidence.

An anomalous component is *explained* when something it depends on directly became anomalous
too, no later than ``explain_window_s`` after it (a dependency's slow creep may cross its band
after its dependent's faster series do; an unrelated blip hours later explains nothing): its
anomaly is then taken for a symptom.  Explanation follows anomalous paths only: a device can
explain the scorer's anomaly through the LLM tier when the LLM tier is anomalous too, not across
a quiet (or unobserved) LLM tier; so a stray blip on a distant dependency does not turn a real
fault into a "symptom".  ``explained_by`` lists every anomalous component upstream along such
paths.  Ranking: unexplained components first, by score (how
far beyond its band the strongest series went: a fault is far outside, a stray false alarm just
outside), then onset; then the explained ones, by depth in the graph (closer to the sources
first) and onset.  Each entry carries its evidence: the flagged series, the
onset and the excess, and which anomalous dependencies explain it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from npusuite.platform.ops.anomalies import SeriesVerdict
from npusuite.platform.ops.topology import Topology


@dataclass(frozen=True)
class Evidence:
    series: str
    promql: str
    onset: float
    score: float
    method: str


@dataclass(frozen=True)
class RankedComponent:
    rank: int
    component: str
    onset: float
    score: float
    explained_by: tuple[str, ...]  # anomalous dependencies
    evidence: tuple[Evidence, ...]

    @property
    def root_candidate(self) -> bool:
        return not self.explained_by


def rank(topology: Topology, verdicts: Iterable[SeriesVerdict], *,
         explain_window_s: float = 900.0) -> list[RankedComponent]:
    by_comp: dict[str, list[SeriesVerdict]] = {}
    for v in verdicts:
        if v.anomalous:
            by_comp.setdefault(v.component, []).append(v)
    rows = []
    for comp, vs in by_comp.items():
        onset = min(v.onset for v in vs if v.onset is not None)
        score = max(v.score for v in vs)
        rows.append((comp, onset, score, vs))
    onsets = {c: o for c, o, _, _ in rows}
    ranked = []
    def direct(c: str) -> set[str]:
        return {d for d in topology[c].depends_on if d in onsets and onsets[d] <= onsets[c] + explain_window_s}

    for comp, onset, score, vs in rows:
        seen: set[str] = set()
        stack = list(direct(comp))
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.add(d)
                stack.extend(direct(d))
        explained = tuple(sorted(seen))
        ev = tuple(sorted((Evidence(v.series.name, v.series.promql, float(v.onset), v.score, v.method)
                           for v in vs if v.onset is not None), key=lambda e: e.onset))
        ranked.append((comp, onset, score, explained, ev))
    ranked.sort(key=lambda r: (0, -r[2], r[1]) if not r[3] else (1, topology.depth(r[0]), r[1]))
    return [RankedComponent(i + 1, c, o, s, ex, ev) for i, (c, o, s, ex, ev) in enumerate(ranked)]
