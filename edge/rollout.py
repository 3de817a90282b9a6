"""Staged rollout policy (as Eclipse hawkBit's rollout groups): a pure function, no I/O.

Rules:

* A campaign fixes its device set when it is created, and orders it by
  ``sha256(campaign_id + device_id)``: a stable, unbiased order, so stage 1
  is a random 5% that stays the same on every evaluation.
* Stage ``i`` covers the first ``ceil(pct_i * N / 100)`` devices (at least
  one, never fewer than the stage before); stages are cumulative, so 5 -> 25
  -> 100 means 5% of the fleet, then 20% more, then the rest.
* The failure rate of a stage is ``failed / devices in the stage``.  As soon
  as it is **above** ``failure_threshold`` the campaign **halts**: no device
  receives the update any more (already-running installs finish and report).
  This can happen before every device in the stage has reported.
* When every device of the stage reported success or failure and the rate is
  within the threshold, the campaign **advances** to the next stage, or
  **completes** after the last one.
* A device that has not reported a final outcome ``device_timeout_s`` after
  its stage started counts as **failed** (``timed_out`` in the decision), so a
  dead box cannot stall a rollout forever.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FINAL_STATES = ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    stages_pct: tuple[float, ...] = (5.0, 25.0, 100.0)
    failure_threshold: float = 0.2
    device_timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if not self.stages_pct:
            raise ValueError("a rollout needs at least one stage")
        if any(not 0 < p <= 100 for p in self.stages_pct) or list(self.stages_pct) != sorted(self.stages_pct):
            raise ValueError("stages_pct must be increasing percentages in (0, 100]")
        if self.stages_pct[-1] != 100:
            raise ValueError("the last stage must be 100%")
        if not 0 <= self.failure_threshold < 1:
            raise ValueError("failure_threshold must be in [0, 1)")
        if self.device_timeout_s <= 0:
            raise ValueError("device_timeout_s must be > 0")


@dataclass(frozen=True, slots=True)
class RolloutDecision:
    action: str  # "wait" | "halt" | "complete" (an advance shows as a higher ``stage``)
    stage: int  # the stage after this decision (0-based)
    assigned: tuple[str, ...]  # devices that may install now (empty when halted)
    failure_rate: float
    reason: str
    timed_out: tuple[str, ...] = ()  # devices of the evaluated stage now counted as failed


def order_devices(campaign_id: str, device_ids: Sequence[str]) -> list[str]:
    return sorted(device_ids, key=lambda d: hashlib.sha256(f"{campaign_id}/{d}".encode()).hexdigest())


def stage_sizes(n_devices: int, stages_pct: Sequence[float]) -> list[int]:
    sizes, prev = [], 0
    for pct in stages_pct:
        size = min(n_devices, max(prev, 1, math.ceil(pct * n_devices / 100 - 1e-9)))
        sizes.append(size)
        prev = size
    return sizes


def evaluate(plan: RolloutPlan, campaign_id: str, device_ids: Sequence[str], stage: int,
             outcomes: Mapping[str, str], stage_age_s: float = 0.0) -> RolloutDecision:
    """Decide what a running campaign does now, given each device's reported state and how long ago
    the current stage started."""
    ordered = order_devices(campaign_id, device_ids)
    sizes = stage_sizes(len(ordered), plan.stages_pct)
    timed_out: tuple[str, ...] = ()
    if stage_age_s > plan.device_timeout_s:
        timed_out = tuple(d for d in ordered[:sizes[stage]] if outcomes.get(d) not in FINAL_STATES)
        outcomes = {**outcomes, **{d: "failed" for d in timed_out}}
    while True:
        members = ordered[:sizes[stage]]
        failed = sum(outcomes.get(d) == "failed" for d in members)
        done = sum(outcomes.get(d) in FINAL_STATES for d in members)
        rate = failed / len(members) if members else 0.0
        if rate > plan.failure_threshold:
            late = f", {len(timed_out)} timed out" if timed_out else ""
            return RolloutDecision("halt", stage, (), rate,
                                   f"stage {stage + 1}: {failed}/{len(members)} devices failed{late} "
                                   f"({rate:.0%} > {plan.failure_threshold:.0%})", timed_out)
        if done < len(members):
            return RolloutDecision("wait", stage, tuple(members), rate,
                                   f"stage {stage + 1}: {done}/{len(members)} devices reported", timed_out)
        if stage + 1 >= len(sizes):
            return RolloutDecision("complete", stage, tuple(members), rate,
                                   f"all {len(members)} devices reported, {failed} failed", timed_out)
        stage += 1  # advance, and evaluate the new stage at once (it may already be done)
