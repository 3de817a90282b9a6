"""The suite's dependency graph, declared in ONE place: component -> what it depends on -> key series.

Edges point from a component to what it needs to be healthy ("depends on"), so "upstream" in a
root-cause ranking means "a dependency".  The data paths of the issue map onto it:

* banks: Kafka -> fraud scorer -> LLM tier -> review app.  The scorer depends on Kafka (its
  transactional client), on the transactions it reads (their mix: feature drift) and on the LLM
  tier (grey-band verdicts are awaited in the batch); the LLM tier depends on its device; the
  review app on the scorer, the LLM tier and the edge boxes that upload cases.
* factories: camera -> inspection line -> PLC / archive / review; fleet -> edge box.  The line
  depends on its camera; PLC and archive on the line; the edge box (agent + outbox) on the fleet
  server and the line.

Each component names the PromQL of the series its health is judged by, with the direction that
is bad, a static threshold (the baseline the fault-injection benchmark compares against, the
kind of rule a person writes without forecasts) and a minimum band half-width (so that a series
that is flat in history, e.g. zero lag, is not flagged on noise).  Metric names come from
:mod:`npusuite.platform.observability.names`; a series marked ``pending`` is not exported by any
process yet (its name is the proposed one), and it yields no data until it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from npusuite.platform.observability import names as N


class Direction(StrEnum):
    UP = "up"  # high is bad (latency, lag, temperature, drift)
    DOWN = "down"  # low is bad (throughput, up)
    BOTH = "both"


@dataclass(frozen=True)
class KeySeries:
    name: str  # short, unique within the component
    promql: str  # must return one series (aggregate)
    direction: Direction
    static_threshold: float  # baseline: bad when beyond it in `direction`
    min_band: float  # floor of the forecast band's half-width, in the series' unit
    unit: str = ""
    pending: bool = False  # the metric is not exported yet (proposed name)

    def beyond_static(self, value: float) -> bool:
        if self.direction is Direction.DOWN:
            return value < self.static_threshold
        return value > self.static_threshold


@dataclass(frozen=True)
class Component:
    name: str
    depends_on: tuple[str, ...]
    series: tuple[KeySeries, ...]
    description: str = ""


@dataclass(frozen=True)
class Topology:
    components: tuple[Component, ...]
    _by_name: dict[str, Component] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.components}
        if len(by_name) != len(self.components):
            raise ValueError("duplicate component names")
        for c in self.components:
            for d in c.depends_on:
                if d not in by_name:
                    raise ValueError(f"{c.name} depends on unknown component {d!r}")
            if len({s.name for s in c.series}) != len(c.series):
                raise ValueError(f"{c.name}: duplicate series names")
        object.__setattr__(self, "_by_name", by_name)
        self.order()  # raises on a cycle

    def __getitem__(self, name: str) -> Component:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def dependencies(self, name: str) -> set[str]:
        """Everything ``name`` depends on, transitively."""
        seen: set[str] = set()
        stack = list(self[name].depends_on)
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.add(d)
                stack.extend(self[d].depends_on)
        return seen

    def depth(self, name: str) -> int:
        """0 for a component that depends on nothing; else 1 + the deepest dependency."""
        deps = self[name].depends_on
        return 0 if not deps else 1 + max(self.depth(d) for d in deps)

    def order(self) -> list[str]:
        """Dependencies before dependents (ValueError on a cycle)."""
        out: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise ValueError(f"dependency cycle through {n}")
            state[n] = 1
            for d in self._by_name[n].depends_on:
                visit(d)
            state[n] = 2
            out.append(n)

        for c in self.components:
            visit(c.name)
        return out

    def all_series(self) -> list[tuple[Component, KeySeries]]:
        return [(c, s) for c in self.components for s in c.series]


def _p99(metric: str, window: str = "2m", selector: str = "") -> str:
    return f"histogram_quantile(0.99, sum by (le) (rate({metric}_bucket{selector}[{window}])))"


def _rate(metric: str, window: str = "2m", selector: str = "") -> str:
    return f"sum(rate({metric}{selector}[{window}]))"


#: The suite.  Thresholds: SLA-derived where there is an SLA (scoring 80 ms), otherwise the usual
#: rule of thumb (PSI 0.25 "significant shift"; 85 C for an accelerator; up < 1).
SUITE = Topology((
    Component("kafka", (), (
        KeySeries("aborts", _rate(N.FRAUD_KAFKA_ABORTS), Direction.UP, 0.5, 0.05, "1/s"),
        KeySeries("commit_p99", _p99(N.FRAUD_KAFKA_COMMIT_SECONDS), Direction.UP, 1.0, 0.05, "s"),
        # librdkafka's error_cb (ALL_BROKERS_DOWN, _TRANSPORT) counted by the scorer: the only view of a stopped
        # broker while it is down (commit time and aborts are observed only once commits end, after it is back)
        KeySeries("client_errors", _rate(N.FRAUD_KAFKA_CLIENT_ERRORS), Direction.UP, 0.1, 0.05, "1/s"),
    ), "the Kafka cluster, as the scorer's client sees it (aborts, commit time, client errors)"),
    Component("transactions", (), (
        KeySeries("feature_psi_max", f"max({N.FRAUD_FEATURE_PSI})", Direction.UP, 0.25, 0.03),
        KeySeries("score_psi", f"max({N.FRAUD_SCORE_PSI})", Direction.UP, 0.25, 0.03),
    ), "the mix of the transactions the bank sends (drift per feature and of the score)"),
    Component("device", (), (
        KeySeries("temperature", f"max({N.DEVICE_TEMPERATURE_CELSIUS})", Direction.UP, 85.0, 2.0, "C"),
    ), "the accelerators the platform server runs on"),
    Component("llm-tier", ("device",), (
        KeySeries("ttft_p99", _p99(N.LLM_TIME_TO_FIRST_TOKEN_SECONDS), Direction.UP, 2.0, 0.05, "s"),
        KeySeries("queue", f"sum({N.PLATFORM_QUEUE_LENGTH})", Direction.UP, 64.0, 2.0, "requests"),
    ), "npusuite platform serve: the LLM verdicts for the grey band"),
    Component("fraud-scorer", ("kafka", "transactions", "llm-tier"), (
        KeySeries("latency_p99", _p99(N.FRAUD_SCORE_LATENCY_SECONDS), Direction.UP, N.FRAUD_SLA_SECONDS, 0.005, "s"),
        KeySeries("lag", f"sum({N.FRAUD_CONSUMER_LAG})", Direction.UP, 5000.0, 200.0, "records"),
        KeySeries("throughput", _rate(N.FRAUD_TRANSACTIONS), Direction.DOWN, 1.0, 2.0, "tx/s"),
        KeySeries("escalation_share",
                  f"{_rate(N.FRAUD_LLM_ESCALATIONS)} / {_rate(N.FRAUD_TRANSACTIONS)}",
                  Direction.UP, 0.2, 0.01),
    ), "npusuite fraud run: scores transactions from Kafka"),
    Component("fleet", (), (
        KeySeries("up", 'min(up{job="npusuite-fleet"})', Direction.DOWN, 0.5, 0.5),
    ), "the fleet server that edge boxes take releases from"),
    Component("camera", (), (
        KeySeries("frames", _rate(N.INSPECTION_FRAMES), Direction.DOWN, 1.0, 0.5, "frames/s"),
    ), "the line's camera (frames reaching the line)"),
    Component("inspection-line", ("camera",), (
        KeySeries("decision_p99", _p99(N.INSPECTION_DECISION_SECONDS), Direction.UP, 0.25, 0.01, "s"),
        KeySeries("late", _rate(N.INSPECTION_LATE_DECISIONS), Direction.UP, 0.1, 0.05, "1/s"),
    ), "npusuite inspection run: camera -> model -> decision"),
    Component("plc", ("inspection-line",), (
        KeySeries("errors", _rate(N.INSPECTION_ERRORS, selector='{stage="plc"}'), Direction.UP, 0.1, 0.05, "1/s"),
    ), "the reject gate's PLC (Modbus writes)"),
    Component("archive", ("inspection-line",), (
        KeySeries("errors", _rate(N.INSPECTION_ERRORS, selector='{stage="archive"}'), Direction.UP, 0.1, 0.05,
                  "1/s"),
    ), "the image archive"),
    Component("edge-box", ("fleet", "inspection-line"), (
        KeySeries("outbox_pending", f"sum({N.EDGE_OUTBOX_PENDING_RECORDS})", Direction.UP, 1000.0, 20.0, "records"),
        KeySeries("outbox_write_p99", _p99(N.EDGE_OUTBOX_WRITE_SECONDS), Direction.UP, 0.5, 0.01, "s"),
    ), "the edge agent and its outbox (results waiting for upload)"),
    Component("review", ("fraud-scorer", "llm-tier", "edge-box"), (
        KeySeries("backlog", f"sum({N.REVIEW_BACKLOG_CASES})", Direction.UP, 500.0, 10.0, "cases"),
        KeySeries("sla_breached", f"sum({N.REVIEW_SLA_BREACHED_OPEN_CASES})", Direction.UP, 10.0, 2.0, "cases"),
    ), "npusuite review serve: the analysts' and QC engineers' queues"),
))
