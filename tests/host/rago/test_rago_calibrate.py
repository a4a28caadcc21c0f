"""Calibration on anole's CPU scan backend, and the model's predicted vs measured error (validate.py)."""
import json

import numpy as np
import pytest

from host.rago import calibrate as C
from host.rago.coeff import SchemaError
from host.rago.findings import paradigm
from host.rago.validate import report, validate

HELD_OUT = ((16, 12), (48, 6), (4, 32), (96, 3))
"""(nq, nprobe) never used by the fit."""
REMOTE_HELD_OUT = ((32, 6), (4, 16), (48, 12))
MAX_ERROR = 0.5


def test_fit_recovers_a_known_linear_model():
    rng = np.random.default_rng(0)
    pts = []
    for nq, nprobe in C.GRID:
        codes = int(nq * nprobe * rng.uniform(400, 900))
        pts.append({"nq": nq, "nprobe": nprobe, "codes": codes, "seconds": 30e-6 + 2e-6 * nq + codes / 3e8})
    fit = C.fit_scan(pts)
    assert fit["scan_rate"] == pytest.approx(3e8, rel=1e-3)
    assert fit["batch_overhead_us"] == pytest.approx(30, rel=1e-2)
    assert fit["per_query_us"] == pytest.approx(2, rel=1e-2)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The CPU backend on a small synthetic index, in-process and through a memory node and the
    coordinator over TCP: calibration (fitted grids) and held-out measurements."""
    from host.rago.localhost import REMOTE_GRID, fit_coordinator, measure_remote
    bench = C.ScanBench(tmp_path_factory.mktemp("calib"))
    try:
        grid = [bench.measure(nq, nprobe, reps=9) for nq, nprobe in C.GRID]
        held = [bench.measure(nq, nprobe, reps=9) for nq, nprobe in HELD_OUT]
        again = [bench.measure(nq, nprobe, reps=9) for nq, nprobe in HELD_OUT]
    finally:
        bench.close()
    cal = {"version": 1, "cpu_scan": {"m": bench.index.m, **C.fit_scan(grid), "points": grid},
           "rpc": C.measure_rpc(calls=50)}
    remote = measure_remote(bench.index.path, REMOTE_GRID + REMOTE_HELD_OUT)
    cal["rpc"].update(fit_coordinator(cal, remote[:len(REMOTE_GRID)]))
    held_remote = remote[len(REMOTE_GRID):]
    again += measure_remote(bench.index.path, REMOTE_HELD_OUT)
    # best of two passes: the machine is shared, a pass can be slowed by other processes
    best = [min(a, b, key=lambda m: m["seconds"]) for a, b in zip(held + held_remote, again)]
    return cal, best


def test_calibrated_model_predicts_held_out_searches(measured):
    """In-process scans and searches through a memory node over TCP at (nq, nprobe) the fit never saw."""
    cal, held = measured
    assert cal["cpu_scan"]["scan_rate"] > 1e6                                  # codes/s on one core
    ms = [{"what": "cpu_scan", **p} if "what" not in p else p for p in held]
    checks = validate({"measurements": ms}, calibration=cal)
    assert [c.what for c in checks] == ["cpu_scan"] * len(HELD_OUT) + ["remote_scan"] * len(REMOTE_HELD_OUT)
    assert max(abs(c.error) for c in checks) < MAX_ERROR, report(checks)


def test_calibration_file_round_trip_and_apply(measured, tmp_path):
    cal, _ = measured
    assert 1 < cal["rpc"]["latency_us"] < 100_000 and cal["rpc"]["coordinator_us"] >= 0
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
