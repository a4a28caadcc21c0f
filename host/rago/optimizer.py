"""RAGO-style search over placement, allocation and batch sizes; Pareto frontier of TTFT vs QPS per cost.

Placement: the model stages (in pipeline order) are cut into contiguous groups; a group's stages are
collocated (time-share the group's chips), different groups are disaggregated. Allocation: chips per
group and tensor-parallel width (powers of two; replicas = chips / tp); retrieval hardware kind and node
count. Batching: one batch size per stage. For a configuration:

    TTFT  = sum of pre-decode stage batch latencies + one retrieval batch
    QPS   = min(retrieval QPS, each group's QPS), group QPS = replicas / sum of per-request busy times
            (and, with decode, at most the decode slots / the time a request holds one)
    cost  = sum of chips x gpu.cost + nodes x node cost            (resources.*.cost)

Groups are evaluated separately, pruned to their (latency, QPS, cost) Pareto sets and joined one by one
(pruning after each join), so the search is exhaustive over the grid yet fast.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np

from host.rago.coeff import SchemaError
from host.rago.perf_model import PerfModel
from host.rago.plan import Plan, pareto_2d, pareto_3d
from host.rago.schema import RagSchema

log = logging.getLogger(__name__)


class NoPlanError(SchemaError):
    """No configuration meets the SLO; the message gives the best TTFT reachable."""


@dataclass(slots=True)
class _Options:
    """Candidate partial configurations: arrays over options plus how each was made."""

    lat: np.ndarray
    qps: np.ndarray
    cost: np.ndarray
    chips: np.ndarray
    parts: list           # per option: a tuple of group/retrieval descriptions (dicts)

    def prune(self) -> "_Options":
        keep = pareto_3d(self.lat, self.qps, self.cost)
        return _Options(self.lat[keep], self.qps[keep], self.cost[keep], self.chips[keep], [self.parts[i] for i in keep])

    def join(self, other: "_Options", max_chips: int) -> "_Options":
        i, j = np.meshgrid(np.arange(len(self.lat)), np.arange(len(other.lat)), indexing="ij")
        i, j = i.ravel(), j.ravel()
        chips = self.chips[i] + other.chips[j]
        ok = chips <= max_chips
        i, j, chips = i[ok], j[ok], chips[ok]
        lat, qps, cost = self.lat[i] + other.lat[j], np.minimum(self.qps[i], other.qps[j]), self.cost[i] + other.cost[j]
        keep = pareto_3d(lat, qps, cost)
        return _Options(lat[keep], qps[keep], cost[keep], chips[keep],
                        [self.parts[i[k]] + other.parts[j[k]] for k in keep])


def powers_of_two(lo: int, hi: int) -> list[int]:
    """Powers of two in [lo rounded up to one, hi]."""
    return [1 << e for e in range(max(0, math.ceil(math.log2(lo))), int(math.log2(hi)) + 1)] if hi >= lo else []


def placements(stages: list[str]) -> list[list[tuple[str, ...]]]:
    """Every cut of ``stages`` into contiguous groups (2^(n-1) of them)."""
    out = []
    for cuts in itertools.product((False, True), repeat=max(0, len(stages) - 1)):
        groups, cur = [], [stages[0]]
        for s, cut in zip(stages[1:], cuts):
            if cut:
                groups.append(tuple(cur))
                cur = []
            cur.append(s)
        groups.append(tuple(cur))
        out.append(groups)
    return out


class Optimizer:
    """Exhaustive (pruned) search for one schema; ``frontier()`` and ``best()`` return Plans."""

    def __init__(self, schema: RagSchema, model: PerfModel | None = None):
        self.schema = schema
        self.model = model or PerfModel(schema)
        sp, res = schema.search, schema.resources
        self.batches = powers_of_two(1, sp.max_batch)
        self.decode_batches = powers_of_two(1, sp.max_decode_batch)
        self.max_gpus = res.gpu.count                                   # all groups together
        self.max_group = min(res.gpu.count, 1 << int(math.log2(sp.max_chips)))
        self.tpot_s = schema.slo.tpot_ms * 1e-3 or math.inf

    # ---- retrieval options --------------------------------------------------------------------------
    def retrieval_options(self) -> list[dict]:
        """Every (kind, node count, batch size) of retrieval with its batch latency, QPS and cost."""
        r, res, sp = self.schema.retrieval, self.schema.resources, self.schema.search
        out = []
        for kind in ("cpu_server", "fpga"):
            node = getattr(res, kind)
            if node is None:
                continue
            lo = res.min_nodes(kind, r.database_bytes)
            for nodes in sorted({min(node.count, lo * f) for f in powers_of_two(1, sp.max_node_factor)}):
                if nodes < lo:
                    continue
                for b in self.batches:
                    cost = self.model.retrieval(kind, nodes, b)
                    out.append({"stage": "retrieval", "kind": kind, "nodes": nodes, "batch": b,
                                "latency_s": cost.total_s, "qps": b / cost.total_s / r.retrievals_per_request,
                                "cost": nodes * node.cost})
        return out

    # ---- one placement group ------------------------------------------------------------------------
    def group_options(self, group: tuple[str, ...], retrieval: dict | None) -> _Options:
        """All (chips, tp, batch sizes) for ``group``, pruned; ``retrieval`` matters only with decode when
        retrieval is iterative."""
        m, res = self.model, self.schema.resources
        models = {self.schema.llm(s).model.name: self.schema.llm(s).model for s in group}
        tp_min = res.min_chips(sum(x.weight_bytes for x in models.values()))
        lat, qps, cost, chips, parts = [], [], [], [], []
        for n in powers_of_two(tp_min, self.max_group):
            for tp in powers_of_two(tp_min, min(n, max(tp_min, self.schema.search.max_tp))):
                reps = n // tp
                per_stage = [[o for b in (self.decode_batches if s == "decode" else self.batches)
                              if (o := self.stage_option(group, s, b, tp, reps, retrieval)) is not None]
                             for s in group]
                if not all(per_stage) or not m.fits(group, tp):
                    continue
                for combo in itertools.product(*per_stage):
                    busy = sum(o[3] for o in combo)
                    lat.append(sum(o[2] for o in combo))
                    qps.append(min(reps / busy, *(o[4] for o in combo)))
                    cost.append(n * res.gpu.cost)
                    chips.append(n)
                    parts.append(({"stages": list(group), "chips": n, "tp": tp, "replicas": reps,
                                   "batch": {o[0]: o[1] for o in combo},
                                   "latency_s": {o[0]: o[2] for o in combo if o[0] != "decode"},
                                   "tpot_s": max(o[5] for o in combo)},))
        return _Options(np.array(lat), np.array(qps), np.array(cost), np.array(chips, dtype=np.int64), parts).prune()

    def stage_option(self, group: tuple[str, ...], s: str, b: int, tp: int, reps: int, retrieval: dict | None,
                     tpot_limit: float | None = None):
        """(stage, batch, TTFT latency, busy s/request, QPS bound, TPOT) of stage ``s`` at batch ``b``, or
        None when it does not fit memory or the TPOT limit (default: the SLO)."""
        m = self.model
        if s != "decode":
            t = m.stage_latency(s, b, tp)
            return s, b, t, t / b, math.inf, 0.0
        if not m.fits(group, tp, b):
            return None
        kw = {} if retrieval is None else {"kind": retrieval["kind"], "nodes": retrieval["nodes"],
                                           "rbatch": retrieval["batch"]}
        resid, busy, _ = m.decode_residence(b, tp, reps, **kw)
        tpot = resid / self.schema.llm("decode").output_tokens
        if tpot > (self.tpot_s if tpot_limit is None else tpot_limit) or not math.isfinite(resid):
            return None
        return s, b, 0.0, busy, reps * b / resid, tpot

    def evaluate(self, groups: list[dict], retrieval: dict) -> Plan:
        """The Plan of one given configuration: ``groups`` [{"stages", "chips", "tp", "batch": {stage: B}}],
        ``retrieval`` {"kind", "nodes", "batch"} (e.g. what the coordinator runs, for validation)."""
        r = self.model.retrieval(retrieval["kind"], retrieval["nodes"], retrieval["batch"]).total_s
        node = getattr(self.schema.resources, retrieval["kind"])
        ropt = {"stage": "retrieval", **retrieval, "latency_s": r,
                "qps": retrieval["batch"] / r / self.schema.retrieval.retrievals_per_request,
                "cost": retrieval["nodes"] * node.cost}
        parts, lat, qps, cost = [], ropt["latency_s"], ropt["qps"], ropt["cost"]
        iterative = self.schema.retrieval.retrievals_per_request > 1
        for g in groups:
            stages, reps = tuple(g["stages"]), g["chips"] // g["tp"]
            if "decode" in stages and self.model.per_token_retrieval and g["batch"]["decode"] != retrieval["batch"]:
                raise SchemaError(f"retrieval before every token runs in lock-step: the retrieval batch "
                                  f"({retrieval['batch']}) must be the decode batch ({g['batch']['decode']})")
            combo = [self.stage_option(stages, s, g["batch"][s], g["tp"], reps, ropt if iterative else None,
                                       tpot_limit=math.inf) for s in stages]
            if None in combo or not self.model.fits(stages, g["tp"]):
                raise SchemaError(f"group {'+'.join(stages)}: its models or decode batch do not fit {g['tp']} GPUs")
            lat += sum(o[2] for o in combo)
            qps = min(qps, reps / sum(o[3] for o in combo), *(o[4] for o in combo))
            cost += g["chips"] * self.schema.resources.gpu.cost
            parts.append({"stages": list(stages), "chips": g["chips"], "tp": g["tp"], "replicas": reps,
                          "batch": dict(g["batch"]), "latency_s": {o[0]: o[2] for o in combo if o[0] != "decode"},
                          "tpot_s": max(o[5] for o in combo)})
        return Plan.from_parts(self.schema, (*parts, ropt), lat, qps, cost)

    # ---- the whole search ---------------------------------------------------------------------------
    def search(self) -> list[Plan]:
        """Every non-dominated configuration as a Plan (not yet reduced to the 2-D frontier)."""
        sch = self.schema
        iterative = sch.retrieval.retrievals_per_request > 1
        ropts = self.retrieval_options()
        plans: list[Plan] = []
        for groups in placements(sch.accel_stages):
            fixed = [self.group_options(g, None) for g in groups if not (iterative and "decode" in g)]
            base = fixed[0] if fixed else None
            for f in fixed[1:]:
                base = base.join(f, self.max_gpus)
            for r in (ropts if iterative else [None]):
                acc = base
                for g in groups:
                    if iterative and "decode" in g:
                        opt = self.group_options(g, r)
                        acc = opt if acc is None else acc.join(opt, self.max_gpus)
                if acc is None or not len(acc.lat):
                    continue
                rs = [r] if r is not None else ropts
                rop = _Options(np.array([x["latency_s"] for x in rs]), np.array([x["qps"] for x in rs]),
                               np.array([x["cost"] for x in rs]), np.zeros(len(rs), np.int64), [(x,) for x in rs])
                acc = acc.join(rop, self.max_gpus)
                plans += [Plan.from_parts(sch, p, lat, q, c) for p, lat, q, c in zip(acc.parts, acc.lat, acc.qps, acc.cost)]
        if not plans:
            tp = min(self.max_group, sch.search.max_tp)
            floor = self.model.stage_latency("decode", 1, max(tp, 1)) * 1e3
            raise NoPlanError(f"no plan meets the SLO (slo.tpot_ms {sch.slo.tpot_ms:g} ms) within resources.gpu "
                              f"and the decode KV cache; one decode step alone takes {floor:.3g} ms")
        log.info("%s: %d non-dominated configurations", sch.name, len(plans))
        return plans

    def frontier(self) -> list[Plan]:
        """Pareto frontier of (TTFT ascending, QPS per cost descending), sorted by TTFT."""
        plans = self.search()
        # round away float noise of summation order, so equal configurations tie
        keep = pareto_2d(np.round([p.ttft_s for p in plans], 12), np.round([p.qps_per_cost for p in plans], 9))
        return sorted((plans[i] for i in keep), key=lambda p: p.ttft_s)

    def best(self, frontier: list[Plan] | None = None, slo_ttft_ms: float | None = None,
             tolerance: float = 0.02) -> Plan:
        """The frontier plan with the most QPS per cost whose TTFT meets the SLO (the schema's unless given);
        plans within ``tolerance`` of that QPS per cost count as equal and the one with the lowest TTFT wins."""
        frontier = frontier or self.frontier()
        slo = self.schema.slo.ttft_ms if slo_ttft_ms is None else slo_ttft_ms
        ok = [p for p in frontier if not slo or p.ttft_s * 1e3 <= slo]
        if not ok:
            best = min(p.ttft_s for p in frontier)
            raise NoPlanError(f"no plan meets the SLO (ttft {slo:g} ms); the best TTFT is {best * 1e3:.3g} ms")
        top = max(p.qps_per_cost for p in ok)
        return min((p for p in ok if p.qps_per_cost >= top * (1 - tolerance)), key=lambda p: p.ttft_s)
