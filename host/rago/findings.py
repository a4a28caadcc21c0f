"""The four RAGO paradigm findings, computed by anole's model from the shipped schemas.

Each function takes the paradigm's schema and returns a dict of numbers (asserted by the tests, printed
by ``anole rago findings``) plus, under ``"plot"``, what ``host.rago.plot.finding_figure`` draws.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from host.rago.optimizer import Optimizer
from host.rago.plan import Plan
from host.rago.schema import RagSchema, load_schema

PARADIGMS = Path(__file__).parent / "paradigms"
FILES = {"hyperscale": "hyperscale.yaml", "long_context": "long_context.yaml",
         "iterative": "iterative.yaml", "rewriter_reranker": "rewriter_reranker.yaml"}


def paradigm(name: str) -> RagSchema:
    """One of the shipped example schemas by name (hyperscale, long_context, iterative, rewriter_reranker)."""
    return load_schema(PARADIGMS / FILES[name])


def _spec(plan: Plan) -> tuple[list[dict], dict]:
    groups = [{k: g[k] for k in ("stages", "chips", "tp", "batch")} for g in plan.groups]
    return groups, {k: plan.retrieval[k] for k in ("kind", "nodes", "batch")}


def hyperscale(schema: RagSchema, large_model: str = "llama-70b") -> dict:
    """Retrieval's share of TTFT and cost with the small LLM and with ``large_model``; the frontier with
    and without FPGA memory nodes."""
    cpu_only = replace(schema, resources=schema.resources.without("fpga"))
    cpu, both = Optimizer(cpu_only), Optimizer(schema)
    large = Optimizer(cpu_only.with_model(("prefix", "decode"), large_model))
    f_cpu, f_both, f_large = cpu.frontier(), both.frontier(), large.frontier()
    b_cpu, b_large, b_both = cpu.best(f_cpu), large.best(f_large), both.best(f_both)
    return {
        "small_retrieval_ttft_share": b_cpu.share("retrieval"),
        "small_retrieval_cost_share": b_cpu.cost_share(schema)["retrieval"],
        "large_retrieval_ttft_share": b_large.share("retrieval"),
        "large_retrieval_cost_share": b_large.cost_share(schema)["retrieval"],
        "cpu_min_ttft_ms": f_cpu[0].ttft_s * 1e3, "fpga_min_ttft_ms": f_both[0].ttft_s * 1e3,
        "cpu_max_qps_per_cost": max(p.qps_per_cost for p in f_cpu),
        "fpga_max_qps_per_cost": max(p.qps_per_cost for p in f_both),
        "fpga_best_uses": b_both.retrieval["kind"],
        "plot": {"frontiers": {"CPU servers": f_cpu, "CPU or FPGA memory nodes": f_both, f"CPU, {large_model}": f_large},
                 "breakdown": {"small LLM": b_cpu, large_model: b_large, "with FPGA": b_both}},
    }


def long_context(schema: RagSchema) -> dict:
    """The encoder's and retrieval's shares of TTFT (fastest and chosen plans), and encoder vs prefix time
    on the same chips at batch 1."""
    opt = Optimizer(schema)
    front = opt.frontier()
    best, fast = opt.best(front), front[0]
    m = opt.model
    return {
        "encoder_ttft_share_best": best.share("encoder"), "encoder_ttft_share_fastest": fast.share("encoder"),
        "retrieval_ttft_share_best": best.share("retrieval"),
        "retrieval_ttft_share_fastest": fast.share("retrieval"),
        "encoder_ms_tp8": m.stage_latency("encoder", 1, 8) * 1e3, "prefix_ms_tp8": m.stage_latency("prefix", 1, 8) * 1e3,
        "plot": {"frontiers": {"long-context": front}, "breakdown": {"fastest": fast, "chosen": best}},
    }


def iterative(schema: RagSchema) -> dict:
    """Sweep the retrieval batch size with the chosen plan's GPUs and nodes: TPOT (stalls included),
    active fraction of decode slots and QPS per cost; plus the TPOT without iterative retrieval."""
    opt = Optimizer(schema)
    best = opt.best()
    groups, ret = _spec(best)
    dec = next(g for g in groups if "decode" in g["stages"])
    reps = dec["chips"] // dec["tp"]
    sweep = []
    for b in opt.batches:
        if b > reps * dec["batch"]["decode"]:
            break
        plan = opt.evaluate(groups, {**ret, "batch": b})
        _, _, active = opt.model.decode_residence(dec["batch"]["decode"], dec["tp"], reps, ret["kind"], ret["nodes"], b)
        sweep.append({"batch": b, "tpot_ms": plan.tpot_s * 1e3, "active": active, "qps_per_cost": plan.qps_per_cost,
                      "ttft_ms": plan.ttft_s * 1e3})
    top = max(sweep, key=lambda s: s["qps_per_cost"])
    no_iter = opt.model.stage_latency("decode", dec["batch"]["decode"], dec["tp"]) * 1e3
    return {
        "best_retrieval_batch": top["batch"], "sweep": sweep,
        "qps_per_cost_at_1": sweep[0]["qps_per_cost"], "qps_per_cost_at_best": top["qps_per_cost"],
        "qps_per_cost_at_max": sweep[-1]["qps_per_cost"], "max_batch": sweep[-1]["batch"],
        "active_at_1": sweep[0]["active"], "active_at_best": top["active"], "active_at_max": sweep[-1]["active"],
        "tpot_ms_best": top["tpot_ms"], "tpot_ms_without_stalls": no_iter,
        "plot": {"sweep": sweep},
    }


def rewriter_reranker(schema: RagSchema) -> dict:
    """TTFT with and without the rewriter (each re-optimized), and the rewriter's and reranker's shares."""
    opt, bare = Optimizer(schema), Optimizer(schema.without("rewriter"))
    norr = Optimizer(schema.without("rewriter").without("reranker"))
    f, fb, fn = opt.frontier(), bare.frontier(), norr.frontier()
    fast, fast_bare = f[0], fb[0]
    return {
        "min_ttft_ms": fast.ttft_s * 1e3, "min_ttft_ms_without_rewriter": fast_bare.ttft_s * 1e3,
        "min_ttft_ms_without_both": fn[0].ttft_s * 1e3,
        "rewriter_ttft_share": fast.share("rewriter"), "reranker_ttft_share": fast.share("reranker"),
        "plot": {"frontiers": {"rewriter + reranker": f, "reranker only": fb, "neither": fn},
                 "breakdown": {"rewriter + reranker": fast, "reranker only": fast_bare}},
    }


ALL = {"hyperscale": hyperscale, "long_context": long_context, "iterative": iterative,
       "rewriter_reranker": rewriter_reranker}
