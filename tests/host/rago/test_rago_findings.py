"""The four RAGO paradigm findings, reproduced qualitatively by anole's model on the shipped schemas."""
import pytest

from host.rago import findings as F


@pytest.fixture(scope="module")
def results():
    return {name: fn(F.paradigm(name)) for name, fn in F.ALL.items()}


def test_hyperscale_retrieval_dominates_with_small_llm(results):
    r = results["hyperscale"]
    assert r["small_retrieval_ttft_share"] > 0.5          # model: 0.93
    assert r["small_retrieval_cost_share"] > 0.8          # model: 0.94
    assert r["large_retrieval_ttft_share"] < r["small_retrieval_ttft_share"] - 0.3   # 70B: 0.20
    assert r["large_retrieval_cost_share"] < r["small_retrieval_cost_share"] - 0.3   # 70B: 0.40


def test_hyperscale_fpga_memory_nodes_shift_the_frontier(results):
    r = results["hyperscale"]
    assert r["fpga_min_ttft_ms"] < 0.5 * r["cpu_min_ttft_ms"]            # 1.9 vs 5.1 ms
    assert r["fpga_max_qps_per_cost"] > 1.2 * r["cpu_max_qps_per_cost"]  # 9.5 vs 7.0
    assert r["fpga_best_uses"] == "fpga"
    cpu, both = r["plot"]["frontiers"]["CPU servers"], r["plot"]["frontiers"]["CPU or FPGA memory nodes"]
    # every CPU-only frontier point is beaten by some point of the frontier with FPGAs available
    for p in cpu:
        assert any(q.ttft_s <= p.ttft_s and q.qps_per_cost > p.qps_per_cost for q in both)


def test_long_context_document_encoding_dominates(results):
    r = results["long_context"]
    assert r["encoder_ttft_share_best"] > 0.5 and r["encoder_ttft_share_fastest"] > 0.5     # 0.62
    assert r["retrieval_ttft_share_best"] < 0.01 and r["retrieval_ttft_share_fastest"] < 0.01
    assert r["encoder_ms_tp8"] > r["prefix_ms_tp8"]     # 120M encoder over 1M tokens > 70B prefix


def test_iterative_decode_stalls_and_retrieval_batch_trades_off(results):
    r = results["iterative"]
    assert r["tpot_ms_best"] > 1.2 * r["tpot_ms_without_stalls"]           # 23.6 vs 16.4 ms
    assert 1 < r["best_retrieval_batch"] < r["max_batch"]                  # an interior optimum
    assert r["qps_per_cost_at_best"] > 1.1 * r["qps_per_cost_at_1"]        # small batches: overheads
    assert r["qps_per_cost_at_best"] > 1.03 * r["qps_per_cost_at_max"]     # large batches: decode idles
    assert r["active_at_max"] < r["active_at_best"]
    actives = [s["active"] for s in r["sweep"] if s["batch"] >= r["best_retrieval_batch"]]
    assert actives == sorted(actives, reverse=True)


def test_rewriter_inflates_ttft_reranker_does_not(results):
    r = results["rewriter_reranker"]
    assert r["min_ttft_ms"] > 1.5 * r["min_ttft_ms_without_rewriter"]     # 75 vs 40 ms
    assert r["rewriter_ttft_share"] > 0.3                                  # 0.47
    assert r["reranker_ttft_share"] < 0.05                                 # 0.005
    assert r["min_ttft_ms_without_rewriter"] < 1.05 * r["min_ttft_ms_without_both"]


def test_finding_figures(results, tmp_path):
    from host.rago.plot import finding_figure
    for name, r in results.items():
        out = finding_figure(name, r, tmp_path / f"{name}.png")
        assert out.stat().st_size > 10_000
