"""Calibration on anole's CPU scan backend, and the model's predicted vs measured error (validate.py)."""
import json

import numpy as np
import pytest

from host.rago import calibrate as C
from host.rago.coeff import SchemaError
from host.rago.findings import paradigm
from host.rago.scan_model import fit_scan, predict_scan
from host.rago.validate import report, validate

HELD_OUT = ((16, 12), (48, 6), (4, 32), (96, 3))
"""(nq, nprobe) never used by the fit."""
REMOTE_HELD_OUT = ((32, 6), (4, 16), (48, 12))
TRUE_SCAN = {"batch_overhead_us": 30.0, "per_query_us": 2.0, "scan_rate": 3e8}
TRUE_RPC = {"latency_us": 80.0, "coordinator_us": 150.0}


def _known_scan(nq: int, nprobe: int, codes: int) -> dict:
    """A scan measurement timed by the known model ``TRUE_SCAN`` (no clock involved)."""
    return {"nq": nq, "nprobe": nprobe, "codes": codes, "seconds": predict_scan(TRUE_SCAN, nq, nprobe, codes)}


def test_fit_recovers_a_known_linear_model():
    rng = np.random.default_rng(0)
    pts = [_known_scan(nq, nprobe, int(nq * nprobe * rng.uniform(400, 900))) for nq, nprobe in C.GRID]
    fit = fit_scan(pts)
    assert fit["scan_rate"] == pytest.approx(3e8, rel=1e-3)
    assert fit["batch_overhead_us"] == pytest.approx(30, rel=1e-2)
    assert fit["per_query_us"] == pytest.approx(2, rel=1e-2)


def test_fitted_model_predicts_held_out_points_of_a_known_system():
    """Fit scan and coordinator terms on grids timed by a known model, then predict the held-out
    (nq, nprobe) points, in-process and remote, through ``validate`` (how well the model predicts this
    machine's real timings is measured by scripts/bench_rago_calibrate.py, not asserted here)."""
    from host.rago.localhost import REMOTE_GRID, fit_coordinator, predict_remote
    rng = np.random.default_rng(1)

    def codes(nq, nprobe):
        return int(nq * nprobe * rng.uniform(400, 900))

    cal = {"version": 1, "cpu_scan": {"m": 8, **fit_scan([_known_scan(q, p, codes(q, p)) for q, p in C.GRID])},
           "rpc": {"latency_us": TRUE_RPC["latency_us"]}}
    truth = {"cpu_scan": TRUE_SCAN, "rpc": TRUE_RPC}

    def remote(nq, nprobe):
        m = {"what": "remote_scan", "nodes": 2, "nq": nq, "nprobe": nprobe, "codes": codes(nq, nprobe)}
        return {**m, "seconds": predict_remote(truth, m)}

    cal["rpc"].update(fit_coordinator(cal, [remote(q, p) for q, p in REMOTE_GRID]))
    assert cal["rpc"]["coordinator_us"] == pytest.approx(TRUE_RPC["coordinator_us"], rel=1e-3)
    held = [{"what": "cpu_scan", **_known_scan(q, p, codes(q, p))} for q, p in HELD_OUT]
    held += [remote(q, p) for q, p in REMOTE_HELD_OUT]
    checks = validate({"measurements": held}, calibration=cal)
    assert [c.what for c in checks] == ["cpu_scan"] * len(HELD_OUT) + ["remote_scan"] * len(REMOTE_HELD_OUT)
    assert max(abs(c.error) for c in checks) < 1e-3, report(checks)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The CPU backend on a small synthetic index, in-process and through a memory node and the
    coordinator over TCP: calibration (fitted grids) and held-out measurements."""
    from host.rago.localhost import REMOTE_GRID, fit_coordinator, measure_remote
    bench = C.ScanBench(tmp_path_factory.mktemp("calib"))
    try:
        grid = [bench.measure(nq, nprobe, reps=2) for nq, nprobe in C.GRID]
        held = [bench.measure(nq, nprobe, reps=2) for nq, nprobe in HELD_OUT]
    finally:
        bench.close()
    cal = {"version": 1, "cpu_scan": {"m": bench.index.m, **fit_scan(grid), "points": grid},
           "rpc": C.measure_rpc(calls=20)}
    remote = measure_remote(bench.index.path, REMOTE_GRID + REMOTE_HELD_OUT, reps=2)
    cal["rpc"].update(fit_coordinator(cal, remote[:len(REMOTE_GRID)]))
    return cal, held + remote[len(REMOTE_GRID):]


def test_measured_calibration_predicts_every_held_out_search(measured):
    """The real measurement path end to end: in-process scans and searches through a memory node over
    TCP at (nq, nprobe) the fit never saw each get a positive prediction (their error is not asserted:
    it depends on how busy the machine is)."""
    cal, held = measured
    assert cal["cpu_scan"]["scan_rate"] > 0 and len(cal["cpu_scan"]["points"]) == len(C.GRID)
    ms = [{"what": "cpu_scan", **p} if "what" not in p else p for p in held]
    checks = validate({"measurements": ms}, calibration=cal)
    assert [c.what for c in checks] == ["cpu_scan"] * len(HELD_OUT) + ["remote_scan"] * len(REMOTE_HELD_OUT)
    assert all(c.predicted > 0 and c.measured > 0 for c in checks)
    assert [(m["nq"], m["nprobe"]) for m in held] == list(HELD_OUT + REMOTE_HELD_OUT)


def test_calibration_file_round_trip_and_apply(measured, tmp_path):
    cal, _ = measured
    assert cal["rpc"]["latency_us"] > 0 and cal["rpc"]["coordinator_us"] >= 0
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal))
    schema = C.apply_calibration(paradigm("hyperscale"), C.load_calibration(path), str(path))
    rate = schema.resources.cpu_server.scan_rate
    assert rate.source.startswith(f"measured: {path}")
    assert rate.value == pytest.approx(cal["cpu_scan"]["scan_rate"] * cal["cpu_scan"]["m"] / 96)
    assert schema.resources.network.rpc_latency_us.value == pytest.approx(cal["rpc"]["latency_us"])
    assert schema.resources.network.coordinator_us.source.startswith("measured:")
    checks = validate({"measurements": [{"what": "rpc", "seconds": cal["rpc"]["latency_us"] * 1e-6}]}, schema)
    assert abs(checks[0].error) < 1e-9


def test_bad_calibration_and_measurements(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"version": 1, "cpu_scan": {"m": 8}}))
    with pytest.raises(SchemaError, match="calibration.cpu_scan lacks batch_overhead_us, scan_rate"):
        C.load_calibration(p)
    p.write_text(json.dumps({"version": 2}))
    with pytest.raises(SchemaError, match="calibration.version must be 1"):
        C.load_calibration(p)
    with pytest.raises(SchemaError, match=r"measurements\[0\] \('retrieval'\) lacks field 'nodes'"):
        validate({"measurements": [{"what": "retrieval", "kind": "cpu_server", "batch": 1, "seconds": 1}]},
                 paradigm("hyperscale"))
    with pytest.raises(SchemaError, match="needs a schema"):
        validate({"measurements": [{"what": "prefill"}]})
    with pytest.raises(SchemaError, match="what must be one of"):
        validate({"measurements": [{"what": "magic"}]}, paradigm("hyperscale"))


def test_validate_pipeline_measurement():
    from host.rago.optimizer import Optimizer
    schema = paradigm("iterative")
    plan = Optimizer(schema).best()
    spec = [{k: g[k] for k in ("stages", "chips", "tp", "batch")} for g in plan.groups]
    m = {"what": "pipeline", "groups": spec, "retrieval": {k: plan.retrieval[k] for k in ("kind", "nodes", "batch")},
         "ttft_ms": plan.ttft_s * 1e3 * 1.25, "qps": plan.qps / 2}
    checks = validate({"measurements": [m]}, schema)
    assert [c.quantity for c in checks] == ["ttft_ms", "qps"]
    assert checks[0].error == pytest.approx(1 / 1.25 - 1) and checks[1].error == pytest.approx(1.0)
    assert "worst 100.0%" in report(checks)


def test_rtl_summary_sets_fpga_efficiency(tmp_path):
    summary = {"params": {"m": 16, "lanes": 4}, "mode": "throughput", "mismatches": 0, "codes": 39000,
               "cycles": 10000, "codes_per_cycle": 3.9}
    p = tmp_path / "summary.json"
    p.write_text(json.dumps(summary))
    k = C.read_rtl_summary(p)
    assert k["efficiency"] == pytest.approx(3.9 / 4)
    schema = C.apply_calibration(paradigm("hyperscale"), {"version": 1, "fpga_kernel": k})
    assert schema.resources.fpga.efficiency.value == pytest.approx(0.975)
    assert schema.resources.fpga.efficiency.source.startswith(f"measured: {p}")
    p.write_text(json.dumps({**summary, "mismatches": 3}))
    with pytest.raises(SchemaError, match="3 mismatches"):
        C.read_rtl_summary(p)
    p.write_text(json.dumps({"cycles": 3}))
    with pytest.raises(SchemaError, match="not a scan-bench summary"):
        C.read_rtl_summary(p)
