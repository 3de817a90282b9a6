"""A frame whose inspection or result record fails (a broken model's NaN score, an exception) gets no verdict
and is counted; the agent goes on with the next frame (issue 13: fail-safe semantics, never a stopped line)."""

from __future__ import annotations

import threading

from npusuite.edge.agent import AgentConfig, EdgeAgent, InspectorHolder
from npusuite.edge.outbox import Outbox, OutboxConfig
from npusuite.edge.simulate import sample_frames, sim_factory, write_sim_model


class Flaky:
    """The sim model, but NaN scores on frame 2 (the record refuses them) and an exception on frame 5."""

    def __init__(self, tmp_path):
        self.good = sim_factory(write_sim_model(tmp_path / "ok", "line-a", "1.0.0"))
        self.nan = sim_factory(write_sim_model(tmp_path / "nan", "line-a", "1.0.0", mode="nan"))

    def inspect(self, frame):
        if frame.seq == 5:
            raise RuntimeError("kernel fault")
        return (self.nan if frame.seq == 2 else self.good).inspect(frame)


def test_failed_frames_get_no_verdict_and_the_line_goes_on(tmp_path):
    frames, _truth = sample_frames(8, seed=1)
    opened, verdicts = [], []
    outbox = Outbox(OutboxConfig(tmp_path / "outbox.db"))
    agent = EdgeAgent(AgentConfig("box-1"), outbox, InspectorHolder(Flaky(tmp_path)),
                      actions=[lambda r: verdicts.append(r.frame.seq)], on_frame=lambda f: opened.append(f.seq))
    counters = agent.run(frames, threading.Event())
    assert opened == list(range(8))  # every part's window opened (a fail-safe signaller rejects the silent ones)
    assert verdicts == [0, 1, 3, 4, 6, 7]
    assert counters.inspect_errors == 2 and counters.stored == 6 and counters.frames == 8
    assert agent.status()["inspect_errors"] == 2
    outbox.close()
