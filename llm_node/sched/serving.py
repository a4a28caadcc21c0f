"""Serve with any scheduler: engine policies run inside LLMEngine, lane policies (pd_mux, pd_disagg,
tempo_mux) through MuxEngine's partitions. Either way the server sees the LLMEngine interface."""
from __future__ import annotations

import time

from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.scheduler import SchedulerPolicy
from llm_node.sched.mux_engine import MuxEngine


class MuxServingEngine:
    """An LLMEngine whose requests are stepped by a MuxEngine; everything else (score, abort, info) is the
    wrapped engine's. step() never blocks, so it yields the CPU briefly while the lanes compute."""

    def __init__(self, engine: LLMEngine, policy):
        self._engine = engine
        self.mux = MuxEngine(engine, policy)

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def add_request(self, prompt_ids, params=None, arrival: float | None = None, slo=None):
        return self.mux.add_request(prompt_ids, params, slo=slo, arrival=arrival)

    def abort(self, seq_id: int) -> None:
        self.mux.abort(seq_id)

    def has_unfinished(self) -> bool:
        return self.mux.has_unfinished()

    def step(self) -> list:
        out = self.mux.step()
        if not out:
            time.sleep(2e-4)
        return out


def serving_engine(config, policy) -> LLMEngine | MuxServingEngine:
    """The engine a server drives for ``policy`` (a SchedulerPolicy or a LanePolicy from the registry)."""
    if policy is None or isinstance(policy, SchedulerPolicy):
        return LLMEngine(config, policy)
    return MuxServingEngine(LLMEngine(config), policy)
