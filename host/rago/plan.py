"""A serving plan chosen by the optimizer, and the Pareto-set helpers it is selected with.

A Plan is what the coordinator will be configured from (issue 10 part 5): the retrieval batch size and
the longest wait to fill it, the number of memory nodes, and the LLM instances per stage group.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from host.spec.errors import InputError


@dataclass(slots=True)
class Plan:
    """One configuration and its predicted performance.

    groups:    [{"stages": [...], "chips", "tp", "replicas", "batch": {stage: B}, "latency_s", "tpot_s"}]
    retrieval: {"kind": "cpu_server" | "fpga", "nodes", "batch", "latency_s", "qps", "cost"}
    ttft_s, qps (requests/s), cost (resource units), tpot_s (decode time per output token, stalls included)
    breakdown: seconds per stage on the TTFT path (rewriter, encoder, retrieval, reranker, prefix)
    """

    schema: str
    groups: list[dict]
    retrieval: dict
    ttft_s: float
    qps: float
    cost: float
    tpot_s: float
    breakdown: dict[str, float] = field(default_factory=dict)
    queries_per_retrieval: int = 1
    retrievals_per_request: int = 1

    @classmethod
    def from_parts(cls, schema, parts: tuple, ttft_s: float, qps: float, cost: float) -> "Plan":
        groups = [p for p in parts if "stages" in p]
        retrieval = next(p for p in parts if p.get("stage") == "retrieval")
        breakdown = {s: t for g in groups for s, t in g["latency_s"].items()}
        breakdown["retrieval"] = retrieval["latency_s"]
        order = {s: i for i, s in enumerate(("rewriter", "encoder", "retrieval", "reranker", "prefix"))}
        breakdown = dict(sorted(breakdown.items(), key=lambda kv: order[kv[0]]))
        r = schema.retrieval
        return cls(schema=schema.name, groups=groups, retrieval=retrieval, ttft_s=float(ttft_s), qps=float(qps),
                   cost=float(cost), tpot_s=max(g["tpot_s"] for g in groups), breakdown=breakdown,
                   queries_per_retrieval=r.queries_per_retrieval, retrievals_per_request=r.retrievals_per_request)

    @property
    def qps_per_cost(self) -> float:
        return self.qps / self.cost

    @property
    def gpus(self) -> int:
        return sum(g["chips"] for g in self.groups)

    @property
    def placement(self) -> str:
        """E.g. ``[rewriter+prefix+decode] [reranker]``: brackets are groups of collocated stages."""
        return " ".join("[" + "+".join(g["stages"]) + "]" for g in self.groups)

    def share(self, stage: str) -> float:
        """Fraction of the TTFT spent in ``stage``."""
        return self.breakdown.get(stage, 0.0) / self.ttft_s

    def cost_share(self, schema) -> dict[str, float]:
        """Fraction of the plan's cost per stage group ('retrieval' for the retrieval nodes)."""
        out = {"retrieval": self.retrieval["cost"] / self.cost}
        for g in self.groups:
            out["+".join(g["stages"])] = g["chips"] * schema.resources.gpu.cost / self.cost
        return out

    def coordinator_config(self) -> dict:
        """Coordinator batching knobs: ``max_batch`` queries per fan-out and ``max_wait_s`` to fill it (the
        time the plan's request rate takes to bring one retrieval batch), plus the node counts."""
        batch = self.retrieval["batch"]
        rate = self.qps * self.retrievals_per_request
        return {"max_batch": batch * self.queries_per_retrieval,
                "max_wait_s": round(batch / rate, 6) if rate > 0 else 0.0,
                "memory_nodes": self.retrieval["nodes"],
                "llm_nodes": sum(g["replicas"] for g in self.groups)}

    def to_dict(self) -> dict:
        return {"schema": self.schema, "placement": self.placement, "ttft_ms": self.ttft_s * 1e3,
                "qps": self.qps, "cost": self.cost, "qps_per_cost": self.qps_per_cost, "tpot_ms": self.tpot_s * 1e3,
                "breakdown_ms": {k: v * 1e3 for k, v in self.breakdown.items()}, "groups": self.groups,
                "retrieval": self.retrieval, "coordinator": self.coordinator_config()}

    def summary(self) -> str:
        r = self.retrieval
        return (f"TTFT {self.ttft_s * 1e3:.3g} ms, {self.qps:,.4g} QPS, cost {self.cost:.3g} "
                f"({self.qps_per_cost:,.4g} QPS/cost), TPOT {self.tpot_s * 1e3:.3g} ms; {self.placement} on "
                + ", ".join(f"{g['chips']} GPU (tp {g['tp']}, batch {g['batch']})" for g in self.groups)
                + f"; retrieval {r['nodes']} x {r['kind']} batch {r['batch']}")


def pareto_2d(lat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Indices of points not dominated in (lat ascending, val descending); one of each exact tie."""
    order = np.lexsort((-val, lat))
    best = np.maximum.accumulate(val[order])
    keep = np.ones(len(order), bool)
    keep[1:] = val[order][1:] > best[:-1]
    return np.sort(order[keep])


def pareto_3d(lat: np.ndarray, qps: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of points not dominated in (lat ascending, qps descending, cost ascending).

    Per distinct cost (few: chip counts), a 2-D frontier; then drop points that a cheaper point beats,
    via the staircase of (latency, best QPS at or below it) of all cheaper survivors."""
    if not len(lat):
        return np.zeros(0, np.int64)
    kept: list[np.ndarray] = []
    stair_l = np.zeros(0)
    stair_q = np.zeros(0)
    for c in np.unique(cost):
        idx = np.nonzero(cost == c)[0]
        idx = idx[pareto_2d(lat[idx], qps[idx])]
        if len(stair_l):
            pos = np.searchsorted(stair_l, lat[idx], side="right") - 1
            beaten = (pos >= 0) & (stair_q[np.maximum(pos, 0)] >= qps[idx])
            idx = idx[~beaten]
        kept.append(idx)
        all_l = np.concatenate([stair_l, lat[idx]])
        all_q = np.concatenate([stair_q, qps[idx]])
        order = np.argsort(all_l, kind="stable")
        stair_l, stair_q = all_l[order], np.maximum.accumulate(all_q[order])
    return np.sort(np.concatenate(kept))


MAX_LOCAL_NODES = 8
"""Memory nodes per datastore a localhost demo will start, whatever a plan asks for."""


def demo_settings(plan: dict) -> dict:
    """What a plan (``Plan.to_dict()``, e.g. from `anole rago optimize --plan-out`) sets in the localhost
    system: coordinator batching (``max_batch``, ``max_wait_s``) and memory nodes per datastore."""
    try:
        coord = plan["coordinator"]
        settings = {"max_batch": int(coord["max_batch"]), "max_wait_s": float(coord["max_wait_s"]),
                    "shards": int(coord["memory_nodes"]), "llm_nodes": int(coord["llm_nodes"])}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"not a plan from `anole rago optimize --plan-out` (missing or bad field {e})") from None
    if settings["max_batch"] < 1 or settings["max_wait_s"] < 0 or settings["shards"] < 1:
        raise InputError(f"plan has impossible coordinator settings {coord}")
    settings["shards"] = min(settings["shards"], MAX_LOCAL_NODES)
    return settings
