"""Performance model: roofline limits against hand-computed FLOPs/bytes, retrieval rates, fitted files."""
import json

import pytest

from host.rago.coeff import SchemaError
from host.rago.findings import paradigm
from host.rago.llm_latency import FittedLatency, Roofline
from host.rago.perf_model import PerfModel

H100_FLOPS = 989e12 * 0.5       # peak x the schema's default MFU
H100_BW = 3350e9 * 0.8          # peak x default bandwidth efficiency


def test_decode_at_batch_one_is_weight_bandwidth_bound():
    s = paradigm("iterative")
    m = s.llm("decode").model
    t = Roofline(m, s.resources.gpu).decode_step(1, 512)
    weights = 8.03e9 * 2
    kv = 512 * 2 * 32 * 1024 * 2
    assert t == pytest.approx((weights + kv) / H100_BW, rel=1e-9)


def test_long_prefill_is_compute_bound():
    s = paradigm("iterative")
    t = Roofline(s.llm("prefix").model, s.resources.gpu).prefill(8, 2048)
    flops = 2 * 8.03e9 * 8 * 2048 + 2 * 32 * 4096 * 8 * 2048 * 2048
    assert t == pytest.approx(flops / H100_FLOPS, rel=1e-9)


def test_tensor_parallel_divides_and_adds_overhead():
    s = paradigm("iterative")
    r = Roofline(s.llm("prefix").model, s.resources.gpu)
    assert r.prefill(8, 2048, tp=4) == pytest.approx(r.prefill(8, 2048) / 4 + 32 * 10e-6)


def test_batching_raises_throughput_and_latency():
    pm = PerfModel(paradigm("hyperscale"))
    lat = [pm.stage_latency("decode", b, 1) for b in (1, 4, 16, 64, 256)]
    thr = [b / t for b, t in zip((1, 4, 16, 64, 256), lat)]
    assert lat == sorted(lat) and thr == sorted(thr)


def test_retrieval_scan_rates():
    s = paradigm("hyperscale")
    pm = PerfModel(s)
    r = s.retrieval
    cpu = pm.node_scan_rate("cpu_server")
    assert cpu == pytest.approx(min(96 * 1e7, 460e9 / 96))
    fpga = pm.node_scan_rate("fpga")
    assert fpga == pytest.approx(min(16 * 0.95 * 300e6, 77e9 / 96))     # DDR-bound at 96-byte codes
    c = pm.retrieval("fpga", 128, 8)
    assert c.scan_s == pytest.approx(8 * 4 * r.codes_per_query / 128 / fpga)
    assert c.overhead_s == pytest.approx(50e-6)
    assert c.network_s > 100e-6


def test_missing_cpu_scan_rate_names_field():
    import dataclasses
    s = paradigm("long_context")
    res = dataclasses.replace(s.resources, cpu_server=dataclasses.replace(s.resources.cpu_server, scan_rate=None))
    with pytest.raises(SchemaError, match="resources.cpu_server.scan_rate"):
        PerfModel(dataclasses.replace(s, resources=res)).node_scan_rate("cpu_server")


def test_decode_without_iterative_retrieval_has_no_stall():
    pm = PerfModel(paradigm("hyperscale"))
    resid, busy, active = pm.decode_residence(64, 1, 2)
    assert resid == pytest.approx(256 * pm.stage_latency("decode", 64, 1))
    assert busy == pytest.approx(resid / 64) and active == 1


def test_iterative_stalls_grow_with_large_retrieval_batches():
    pm = PerfModel(paradigm("iterative"))
    step = pm.stage_latency("decode", 256, 1)
    actives = [pm.decode_residence(256, 1, 8, "cpu_server", 1, b)[2] for b in (2, 16, 256)]
    resid = pm.decode_residence(256, 1, 8, "cpu_server", 1, 2)[0]
    assert resid > 256 * step
    assert actives[0] > actives[1] > actives[2]


def test_every_coefficient_has_a_source():
    coeffs = PerfModel(paradigm("rewriter_reranker")).coefficients()
    assert {"prefix.gpu.tflops", "cpu_server.scan_rate", "network.rpc_latency_us"} <= set(coeffs)
    for name, c in coeffs.items():
        assert c.source.split(":")[0] in {"spec", "assumption", "measured", "fitted", "schema"}, name


def test_fitted_latency_file_matches_llm_node_reader(tmp_path):
    from llm_node.sched.latency import LatencyModel
    d = {"format": "anole-latency/1", "device": "test-gpu", "backend": "cuda", "units": 1,
         "full": {"prefill": {"c0": 0.002, "tokens": 3e-5, "attn": 1e-9, "context": 2e-8},
                  "decode": {"c0": 0.004, "batch": 2e-5, "context": 3e-9}}, "splits": []}
    path = tmp_path / "lat.json"
    path.write_text(json.dumps(d))
    ref = LatencyModel.load(path)
    f = FittedLatency(path)
    pairs = 100 * 50 + 100 * 101 // 2          # causal query-key pairs of 100 new tokens after 50 cached
    assert f.prefill(4, 100, context=50) == pytest.approx(0.002 + 3e-5 * 400 + 1e-9 * 4 * pairs + 2e-8 * 4 * 150)
    assert f.prefill(4, 100, context=50) == pytest.approx(ref.prefill_time(1.0, 400, 4 * pairs, 4 * 150))
    assert f.decode_step(8, 300) == pytest.approx(0.004 + 2e-5 * 8 + 3e-9 * 8 * 300)
    assert f.decode_step(8, 300) == pytest.approx(ref.decode_time(1.0, 8, 8 * 300))
    assert all(c.source.startswith("fitted: ") for c in f.coefficients().values())


def test_schema_with_fitted_latency_model(tmp_path):
    import yaml

    from host.rago.findings import FILES, PARADIGMS
    from host.rago.schema import load_schema
    d = yaml.safe_load((PARADIGMS / FILES["iterative"]).read_text())
    (tmp_path / "lat.json").write_text(json.dumps({
        "format": "anole-latency/1", "device": "x", "units": 1, "splits": [],
        "full": {"prefill": {"c0": 0.01, "tokens": 0.0, "attn": 0.0, "context": 0.0}, "decode": {"c0": 0.02, "batch": 0.0, "context": 0.0}}}))
    d["models"]["llama-8b"]["latency_model"] = "lat.json"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    pm = PerfModel(load_schema(tmp_path / "s.yaml"))
    assert pm.stage_latency("decode", 32, 1) == pytest.approx(0.02)
    assert pm.stage_latency("prefix", 4, 1) == pytest.approx(0.01)
