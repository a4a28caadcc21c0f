"""Request SLO classes (Tempo's three kinds plus best effort), attainment, service gain, DAG validation.

latency:     TTFT and TBT targets, streamed. Met when TTFT <= ttft and the p90 gap between tokens <= tbt.
             Service gain: the fraction of tokens delivered by their paced deadline arrival + ttft + i * tbt
             (token i), so tokens faster than the pace earn nothing more ("just enough").
throughput:  a TTLT deadline (arrival -> last token). Gain = weight if met, else 0.
collective:  one node of a DAG of LLM calls; the deadline is end-to-end, from the DAG's arrival to the
             finish of its last node. The DAG earns weight * nodes if every node finished in time.
best_effort: no target; always met, no gain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from llm_node.errors import RequestError

TBT_QUANTILE = 0.9


class SLOError(RequestError):
    """An SLO or a DAG of requests that cannot be accepted (bad targets, cycles, unknown dependencies)."""


class Kind(str, Enum):
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    COLLECTIVE = "collective"
    BEST_EFFORT = "best_effort"


@dataclass(frozen=True, slots=True)
class SLO:
    """Targets in seconds; `ttlt` is the TTLT deadline (throughput) or the DAG's end-to-end one (collective)."""

    kind: Kind = Kind.BEST_EFFORT
    ttft: float | None = None
    tbt: float | None = None
    ttlt: float | None = None
    weight: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "kind", Kind(self.kind))
        need = {Kind.LATENCY: ("ttft", "tbt"), Kind.THROUGHPUT: ("ttlt",), Kind.COLLECTIVE: ("ttlt",),
                Kind.BEST_EFFORT: ()}[self.kind]
        for name in ("ttft", "tbt", "ttlt"):
            v = getattr(self, name)
            if name in need and v is None:
                raise SLOError(f"a {self.kind.value} SLO needs {name}")
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise SLOError(f"SLO {name} must be a finite number of seconds > 0, not {v!r}")
        if not self.weight >= 0:
            raise SLOError(f"SLO weight must be >= 0, not {self.weight!r}")

    def token_deadline(self, arrival: float, i: int) -> float:
        """When token i (0 = first) is due for a latency SLO."""
        return arrival + self.ttft + i * self.tbt

    def met(self, arrival: float, token_times: list[float], finish: float | None,
            start: float | None = None) -> bool:
        """Whether a finished request met its SLO; `start` is the DAG's arrival for collective nodes."""
        if finish is None or not token_times:
            return self.kind is Kind.BEST_EFFORT
        if self.kind is Kind.LATENCY:
            gaps = sorted(b - a for a, b in zip(token_times, token_times[1:]))
            p = gaps[min(len(gaps) - 1, int(TBT_QUANTILE * len(gaps)))] if gaps else 0.0
            return token_times[0] - arrival <= self.ttft + 1e-9 and p <= self.tbt + 1e-9
        if self.kind in (Kind.THROUGHPUT, Kind.COLLECTIVE):
            return finish - (arrival if start is None else start) <= self.ttlt + 1e-9
        return True

    def gain(self, arrival: float, token_times: list[float], finish: float | None) -> float:
        """Service gain of one request (collective nodes: see `dag_gain`)."""
        if self.kind is Kind.LATENCY:
            if not token_times:
                return 0.0
            on_time = sum(t <= self.token_deadline(arrival, i) + 1e-9 for i, t in enumerate(token_times))
            return self.weight * on_time / len(token_times)
        if self.kind is Kind.THROUGHPUT:
            return self.weight * float(finish is not None and finish - arrival <= self.ttlt)
        return 0.0


def dag_gain(slo: SLO, start: float, finishes: list[float | None]) -> float:
    """Gain of a whole DAG: weight per node, earned only if all nodes finished by start + ttlt."""
    ok = all(f is not None and f - start <= slo.ttlt for f in finishes)
    return slo.weight * len(finishes) * float(ok)


@dataclass(slots=True)
class DagNode:
    """One LLM call of a collective request: its dependencies are names of other nodes of the same DAG."""

    name: str
    deps: tuple[str, ...] = ()
    prompt_len: int = 0
    output_len: int = 0
    meta: dict = field(default_factory=dict)


def validate_dag(nodes: list[DagNode]) -> list[str]:
    """Topological order of the node names; SLOError on duplicates, unknown dependencies or cycles."""
    names = [n.name for n in nodes]
    if not nodes:
        raise SLOError("a DAG needs at least one node")
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        raise SLOError(f"DAG node names must be unique; repeated: {sorted(dup)}")
    known = set(names)
    for n in nodes:
        unknown = [d for d in n.deps if d not in known]
        if unknown:
            raise SLOError(f"DAG node {n.name!r} depends on unknown node(s) {unknown}")
    deps = {n.name: set(n.deps) for n in nodes}
    order: list[str] = []
    ready = [x for x in names if not deps[x]]
    while ready:
        x = ready.pop(0)
        order.append(x)
        for y in names:
            if x in deps[y]:
                deps[y].discard(x)
                if not deps[y] and y not in order and y not in ready:
                    ready.append(y)
    if len(order) < len(nodes):
        cyc = sorted(x for x in names if x not in order)
        raise SLOError(f"DAG has a cycle through node(s) {cyc}")
    return order


def critical_path(nodes: list[DagNode], cost: dict[str, float]) -> dict[str, float]:
    """For each node, the longest cost of a path from it to a sink, itself included (DAG deadline split)."""
    order = validate_dag(nodes)
    children = {n.name: [m.name for m in nodes if n.name in m.deps] for n in nodes}
    out: dict[str, float] = {}
    for x in reversed(order):
        out[x] = cost[x] + max((out[c] for c in children[x]), default=0.0)
    return out
