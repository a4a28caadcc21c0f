"""Optimizer: Pareto helpers and the pruned search against brute-force enumeration; plans and SLOs."""
import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.rago.coeff import SchemaError
from host.rago.findings import paradigm
from host.rago.optimizer import NoPlanError, Optimizer, placements, powers_of_two
from host.rago.plan import pareto_2d, pareto_3d
from host.rago.resources import SearchSpace, Slo


def brute_dominated(points, signs):
    """Indices of points no other point dominates (signs: +1 minimize, -1 maximize), keeping one per tie."""
    keep = []
    for i, p in enumerate(points):
        dom = False
        for j, q in enumerate(points):
            if j == i:
                continue
            le = all(s * a <= s * b for s, a, b in zip(signs, q, p))
            lt = any(s * a < s * b for s, a, b in zip(signs, q, p))
            if le and (lt or j < i):
                dom = True
                break
        if not dom:
            keep.append(i)
    return keep


small = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(1, 4)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(small)
def test_pareto_3d_matches_brute_force(pts):
    a = np.array(pts, float)
    got = pareto_3d(a[:, 0], a[:, 1], a[:, 2])
    want = brute_dominated(pts, (1, -1, 1))
    assert {tuple(pts[i]) for i in got} == {tuple(pts[i]) for i in want}
    assert len(got) == len(want)


@settings(max_examples=200, deadline=None)
@given(small)
def test_pareto_2d_matches_brute_force(pts):
    pts2 = [p[:2] for p in pts]
    a = np.array(pts2, float)
    got = pareto_2d(a[:, 0], a[:, 1])
    assert sorted(tuple(pts2[i]) for i in got) == sorted(tuple(pts2[i]) for i in brute_dominated(pts2, (1, -1)))


def test_placements_and_powers():
    assert placements(["a"]) == [[("a",)]]
    got = placements(["a", "b", "c"])
    assert len(got) == 4 and [("a", "b", "c")] in got and [("a",), ("b",), ("c",)] in got
    assert powers_of_two(3, 20) == [4, 8, 16] and powers_of_two(4, 2) == []


def tiny(name: str):
    s = paradigm(name)
    gpu = dataclasses.replace(s.resources.gpu, count=4)
    return dataclasses.replace(s, resources=dataclasses.replace(s.resources, gpu=gpu),
                               search=SearchSpace(max_batch=4, max_decode_batch=8, max_chips=2, max_tp=2,
                                                  max_node_factor=2), slo=Slo())


def brute_frontier(opt):
    """Every configuration of the grid evaluated one by one, then the 2-D frontier."""
    s, pts = opt.schema, []
    for groups in placements(s.accel_stages):
        for chips in itertools.product(powers_of_two(1, 2), repeat=len(groups)):
            for tps in itertools.product(*(powers_of_two(1, c) for c in chips)):
                per_group = [[dict(zip(g, bs)) for bs in itertools.product(
                    *((opt.decode_batches if st_ == "decode" else opt.batches) for st_ in g))] for g in groups]
                for batches in itertools.product(*per_group):
                    spec = [{"stages": list(g), "chips": c, "tp": t, "batch": b}
                            for g, c, t, b in zip(groups, chips, tps, batches)]
                    for r in opt.retrieval_options():
                        try:
                            p = opt.evaluate(spec, {k: r[k] for k in ("kind", "nodes", "batch")})
                        except SchemaError:
                            continue
                        if np.isfinite(p.qps) and p.qps > 0:
                            pts.append((round(p.ttft_s, 12), round(p.qps_per_cost, 9)))
    return {pts[i] for i in brute_dominated(pts, (1, -1))}


@pytest.mark.parametrize("name", ["hyperscale", "iterative"])
def test_search_equals_brute_force(name):
    opt = Optimizer(tiny(name))
    got = {(round(p.ttft_s, 12), round(p.qps_per_cost, 9)) for p in opt.frontier()}
    assert got == brute_frontier(opt)


def test_frontier_is_monotone_and_plans_reevaluate():
    opt = Optimizer(paradigm("rewriter_reranker"))
    front = opt.frontier()
    assert len(front) > 3
    assert all(a.ttft_s < b.ttft_s and a.qps_per_cost < b.qps_per_cost for a, b in zip(front, front[1:]))
    for p in front[:: max(1, len(front) // 5)]:
        spec = [{k: g[k] for k in ("stages", "chips", "tp", "batch")} for g in p.groups]
        again = opt.evaluate(spec, {k: p.retrieval[k] for k in ("kind", "nodes", "batch")})
        assert again.ttft_s == pytest.approx(p.ttft_s) and again.qps == pytest.approx(p.qps)
        assert p.gpus <= 64


def test_slo_choice_and_impossible_slo():
    opt = Optimizer(paradigm("hyperscale"))
    front = opt.frontier()
    slo_ms = front[2].ttft_s * 1e3
    plan = opt.best(front, slo_ttft_ms=slo_ms)
    assert plan.ttft_s * 1e3 <= slo_ms
    assert plan.qps_per_cost >= 0.98 * max(p.qps_per_cost for p in front if p.ttft_s * 1e3 <= slo_ms)
    with pytest.raises(NoPlanError, match=r"no plan meets the SLO \(ttft 0\.01 ms\); the best TTFT is [\d.]+ ms"):
        opt.best(front, slo_ttft_ms=0.01)


def test_plan_configures_the_coordinator():
    opt = Optimizer(paradigm("iterative"))
    plan = opt.best()
    cfg = plan.coordinator_config()
    assert cfg["max_batch"] == plan.retrieval["batch"] * plan.queries_per_retrieval
    assert cfg["max_wait_s"] == pytest.approx(plan.retrieval["batch"] / (plan.qps * 4), rel=1e-3)
    assert cfg["memory_nodes"] == plan.retrieval["nodes"] and cfg["llm_nodes"] >= 1
    d = plan.to_dict()
    assert d["coordinator"] == cfg and d["ttft_ms"] == pytest.approx(plan.ttft_s * 1e3)
    from host.serve.coordinator import CoordinatorConfig
    CoordinatorConfig(max_batch=cfg["max_batch"], max_wait_s=cfg["max_wait_s"])


def test_tpot_slo_nothing_fits():
    s = dataclasses.replace(paradigm("hyperscale"), slo=Slo(tpot_ms=0.001))
    with pytest.raises(NoPlanError, match="slo.tpot_ms"):
        Optimizer(s).frontier()


@st.composite
def random_schemas(draw):
    """Small valid schemas: random model sizes, stage mix, database and resources."""
    from host.rago.schema import parse_schema
    params = draw(st.sampled_from([0.12, 1.2, 8.0, 70.0]))
    layers, hidden = {0.12: (12, 768), 1.2: (16, 2048), 8.0: (32, 4096), 70.0: (80, 8192)}[params]
    stages = {"retrieval": {"vectors": draw(st.sampled_from([1e6, 1e9, 2e10])), "dim": 128, "pq_bytes": 32,
                            "nprobe_fraction": draw(st.sampled_from([0.001, 0.01])),
                            "retrievals_per_request": draw(st.sampled_from([1, 1, 3])), "retrieved_tokens": 64},
              "prefix": {"model": "llm", "prompt_tokens": draw(st.sampled_from([128, 1024]))},
              "decode": {"model": "llm", "output_tokens": draw(st.sampled_from([16, 128]))}}
    if draw(st.booleans()):
        stages["rewriter"] = {"model": "small", "prompt_tokens": 64, "output_tokens": 8}
    if draw(st.booleans()):
        stages["reranker"] = {"model": "small", "prompt_tokens": 128, "candidates": 4}
    d = {"name": "random", "models": {"llm": {"params_b": params, "layers": layers, "hidden": hidden},
                                      "small": {"params_b": 0.12, "layers": 12, "hidden": 768}},
         "stages": stages,
         "resources": {"gpu": {"count": draw(st.sampled_from([8, 12, 16])), "tflops": 300, "mem_bw_gbs": 2000,
                               "memory_gb": 80},
                       "cpu_server": {"count": 64, "cores": 32, "memory_gb": 512, "mem_bw_gbs": 200,
                                      "scan_rate": 5e7}},
         "search": {"max_batch": 8, "max_decode_batch": 32, "max_chips": 8, "max_node_factor": 2},
         "slo": {"tpot_ms": 0}}
    if draw(st.booleans()):
        d["resources"]["fpga"] = {"count": 64, "lanes": 8, "clock_mhz": 250, "memory_gb": 32, "mem_bw_gbs": 100}
    return parse_schema(d)


@settings(max_examples=15, deadline=None)
@given(random_schemas())
def test_random_schemas_give_consistent_plans(schema):
    opt = Optimizer(schema)
    front = opt.frontier()
    res = schema.resources
    assert all(a.ttft_s < b.ttft_s and a.qps_per_cost < b.qps_per_cost for a, b in zip(front, front[1:]))
    for p in front:
        assert p.gpus <= res.gpu.count
        kind = p.retrieval["kind"]
        assert res.min_nodes(kind, schema.retrieval.database_bytes) <= p.retrieval["nodes"] <= getattr(res, kind).count
        assert sorted(s for g in p.groups for s in g["stages"]) == sorted(schema.accel_stages)
        for g in p.groups:
            assert g["chips"] % g["tp"] == 0 and opt.model.fits(tuple(g["stages"]), g["tp"], g["batch"].get("decode", 0))
        spec = [{k: g[k] for k in ("stages", "chips", "tp", "batch")} for g in p.groups]
        again = opt.evaluate(spec, {k: p.retrieval[k] for k in ("kind", "nodes", "batch")})
        assert again.ttft_s == pytest.approx(p.ttft_s) and again.qps == pytest.approx(p.qps)
