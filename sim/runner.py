"""Build `anole_scan` for a simulator (sim/build.py) and run the cocotb bench of sim/scan/test_scan.py.

Each (parameters, simulator, RAM style, waves) combination builds once in its own directory under
build/sim/ and is reused while its Verilog is unchanged. Set ANOLE_WAVES=1 to record FST waves
(Verilator) or the simulator's native dump (Icarus) in the test directory; a failing run records them
on its own (it is run again, same seed, with waves).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from host.spec.scan_params import ScanParams
from hw.flow.verilog import SIM_MODELS, TOP, emit
from sim.build import BUILD, waves_requested
from sim.build import build as build_sim

log = logging.getLogger(__name__)


def tag(params: ScanParams, ram: str = "inferred") -> str:
    p = params
    return f"m{p.m}_l{p.lanes}_b{p.lut_bits}_k{p.k}_id{p.id_bits}_lb{p.list_bits}" + \
        ("" if ram == "inferred" else f"_{ram}")


def build(params: ScanParams, simulator: str = "verilator", *, waves: bool | None = None,
          ram: str = "inferred"):
    """Emit the Verilog (with the `ram` style's primitive models) and build it; returns
    (runner, build_dir, json_path)."""
    waves = waves_requested() if waves is None else waves
    build_dir = BUILD / f"{simulator}_{tag(params, ram)}{'_waves' if waves else ''}"

    def sources(rtl: Path) -> list[Path]:
        vfile, _ = emit(params, rtl, ram)
        return [vfile, *SIM_MODELS[ram]]

    runner = build_sim(simulator, build_dir, TOP, sources, waves=waves)
    return runner, build_dir, build_dir / "rtl" / f"{TOP}.json"


def run_bench(params: ScanParams, simulator: str = "verilator", *, scans: int = 200, seed: int = 0,
              mode: str = "random", bubble: float = 0.2, stall: float = 0.2,
              testcase: str = "test_scan", waves: bool | None = None, ram: str = "inferred",
              timeout_s: float | None = None, waves_on_failure: bool = True,
              inject_mismatch: bool = False) -> dict:
    """Run one cocotb test of sim/scan/test_scan.py; returns its summary dict (with wall time).

    `timeout_s` limits the simulation's wall-clock time (the build not counted; the summary then says
    `timed_out`). A failing run without waves is run again with the same seed recording FST waves
    (`waves_on_failure`); the summary's `waves` lists the files. `inject_mismatch` corrupts one expected
    result in the bench (a check of the checker)."""
    waves = waves_requested() if waves is None else waves
    summary = _run_once(params, simulator, testcase, waves, ram, seed,
                        {"scans": scans, "seed": seed, "mode": mode, "bubble": bubble, "stall": stall,
                         "timeout_s": timeout_s, "inject_mismatch": inject_mismatch})
    if summary["failed"] and not waves and waves_on_failure and not summary["timed_out"]:
        log.error("%s seed %d failed (%s); rerunning it with waves", tag(params, ram), seed, summary["failed"][0])
        again = _run_once(params, simulator, testcase, True, ram, seed, summary["bench"])
        summary["waves"] = again.get("waves", [])
    return summary


def _run_once(params: ScanParams, simulator: str, testcase: str, waves: bool, ram: str, seed: int,
              bench: dict) -> dict:
    runner, build_dir, jfile = build(params, simulator, waves=waves, ram=ram)
    test_dir = build_dir / f"run_{testcase}_{bench['mode']}_{seed}_{os.getpid()}"
    test_dir.mkdir(parents=True, exist_ok=True)
    out = test_dir / "summary.json"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        runner.test(test_module="sim.scan.test_scan", hdl_toplevel=TOP, testcase=testcase,
                    build_dir=build_dir, test_dir=test_dir, waves=waves, seed=seed,
                    extra_env={"ANOLE_DUT_JSON": str(jfile), "ANOLE_BENCH": json.dumps(bench),
                               "ANOLE_BENCH_OUT": str(out)},
                    log_file=test_dir / "sim.log")
    except SystemExit as e:       # the cocotb runner exits on failing tests under pytest
        log.error("simulation of %s failed (%s); log in %s", build_dir.name, e, test_dir / "sim.log")
    if not out.exists():
        raise RuntimeError(f"bench produced no summary; see {test_dir / 'sim.log'}")
    summary = json.loads(out.read_text())
    summary.update(simulator=simulator, ram=ram, seed=seed, wall_s=round(time.perf_counter() - t0, 2),
                   bench=bench, log=str(test_dir / "sim.log"))
    if waves:
        summary["waves"] = [str(p) for p in test_dir.glob("*.fst")] + [str(p) for p in test_dir.glob("*.vcd")]
    return summary
