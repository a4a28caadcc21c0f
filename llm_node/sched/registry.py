"""Schedulers by name, for `--scheduler` and the benchmarks."""
from __future__ import annotations

from llm_node.sched.latency import LatencyModel

NAMES = ("fcfs", "chunked_prefill", "pd_disagg", "pd_mux", "tempo", "tempo_mux")
NEEDS_MODEL = {"pd_disagg", "pd_mux", "tempo", "tempo_mux"}


def make_policy(name: str, model: LatencyModel | None = None, tbt: float = 0.1, **kw):
    """A fresh policy object (engine SchedulerPolicy or LanePolicy). `tbt` is the default TBT target the
    SLO-aware ones protect; extra keywords go to the policy's constructor."""
    if name not in NAMES:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(NAMES)}")
    if name in NEEDS_MODEL and model is None:
        raise ValueError(f"scheduler {name!r} needs a latency model (run `anole llm profile`)")
    if name == "fcfs":
        from llm_node.engine.scheduler import FCFSPolicy  # lazy: torch
        return FCFSPolicy(**kw)
    if name == "chunked_prefill":
        from llm_node.sched.chunked_prefill import ChunkedPrefillPolicy  # lazy: torch
        return ChunkedPrefillPolicy(model=model, tbt=tbt if model is not None else None, **kw)
    if name == "pd_disagg":
        from llm_node.sched.pd_disagg import PDDisaggPolicy  # lazy: torch
        return PDDisaggPolicy(model, **kw)
    if name == "pd_mux":
        from llm_node.sched.pd_mux import PDMuxPolicy  # lazy: torch
        return PDMuxPolicy(model, tbt=tbt, **kw)
    if name == "tempo_mux":
        from llm_node.sched.tempo import TempoMuxPolicy  # lazy: torch
        return TempoMuxPolicy(model, tbt=tbt, **kw)
    from llm_node.sched.tempo import TempoPolicy  # lazy: torch
    return TempoPolicy(model, **kw)
