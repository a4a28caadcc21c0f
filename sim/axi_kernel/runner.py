"""Build `anole_scan_axi` for a simulator and run the AXI kernel bench through `cocotb_tools.runner`.

Each (parameters, data width, simulator, waves) combination builds once in its own directory under
build/sim/ and is reused while its Verilog is unchanged. ANOLE_WAVES=1 records waves (FST under Verilator).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time

from host.spec.scan_params import ScanParams
from hw.flow.axi_verilog import DEFAULT_DATA_BITS, TOP, emit_axi
from sim.axi_kernel.case import make_case, make_throughput_case
from sim.build import BUILD, SIMULATORS, waves_requested
from sim.build import build as build_sim
from sim.runner import tag

log = logging.getLogger(__name__)
MODES = ("random", "throughput")


def build(params: ScanParams, data_bits: int = DEFAULT_DATA_BITS, simulator: str = "verilator", *,
          waves: bool | None = None):
    """Emit the Verilog and build it; returns (runner, build_dir, json_path)."""
    waves = waves_requested() if waves is None else waves
    build_dir = BUILD / f"axi_{simulator}_{tag(params)}_w{data_bits}{'_waves' if waves else ''}"
    runner = build_sim(simulator, build_dir, TOP, lambda rtl: [emit_axi(params, rtl, data_bits)["verilog"]],
                       waves=waves)
    return runner, build_dir, build_dir / "rtl" / f"{TOP}.json"


def run(params: ScanParams, data_bits: int = DEFAULT_DATA_BITS, simulator: str = "verilator", *,
        seed: int = 0, pause: float = 0.3, mode: str = "random", latency: int = 0,
        waves: bool | None = None, slverr_launch: int = -1) -> dict:
    """Build, write the case and run the bench; returns its summary dict.

    mode "random": the index image, real queries and edge cases of `make_case`, with AXI pauses of
    probability `pause`; "throughput": `make_throughput_case` (4 queries x 4 lists of 1,000-2,000
    codes) with no pauses, whose `codes_per_cycle` is the kernel's scan rate. `latency` > 0 delays
    each read burst's data by that many cycles after its AR in a memory that keeps taking ARs.
    `slverr_launch` >= 0: that launch's first R beat answers SLVERR (the bench checks AXI_ERROR)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    waves = waves_requested() if waves is None else waves
    runner, build_dir, jfile = build(params, data_bits, simulator, waves=waves)
    if mode == "throughput":
        pause = 0.0
        test_dir = build_dir / f"run_{seed}_throughput_lat{latency}_{os.getpid()}"
        case = make_throughput_case(params, test_dir / "case", seed=seed)
    else:
        test_dir = build_dir / f"run_{seed}_p{pause}_lat{latency}_{os.getpid()}"
        case = make_case(params, test_dir / "case", seed=seed)
    out = test_dir / "summary.json"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        runner.test(test_module="sim.axi_kernel.test_axi_kernel", hdl_toplevel=TOP, build_dir=build_dir,
                    test_dir=test_dir, waves=waves, seed=seed, log_file=test_dir / "sim.log",
                    extra_env={"ANOLE_DUT_JSON": str(jfile), "ANOLE_CASE": str(case),
                               "ANOLE_BENCH": json.dumps({"seed": seed, "pause": pause, "latency": latency,
                                                          "slverr_launch": slverr_launch}),
                               "ANOLE_BENCH_OUT": str(out)})
    except SystemExit as e:       # the cocotb runner exits on failing tests under pytest
        log.error("simulation of %s failed (%s); log in %s", build_dir.name, e, test_dir / "sim.log")
    if not out.exists():
        raise RuntimeError(f"bench produced no summary; see {test_dir / 'sim.log'}")
    summary = json.loads(out.read_text())
    summary.update(mode=mode, latency=latency, simulator=simulator, data_bits=data_bits,
                   codes_per_cycle_per_lane=round(summary["codes"] / max(summary["cycles"], 1) / params.lanes, 3),
                   wall_s=round(time.perf_counter() - t0, 2),
                   log=str(test_dir / "sim.log"))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="cocotb bench of anole_scan_axi on an AXI RAM")
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--lut-bits", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--id-bits", type=int, default=32)
    ap.add_argument("--data-bits", type=int, default=DEFAULT_DATA_BITS)
    ap.add_argument("--sim", choices=SIMULATORS, default="verilator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pause", type=float, default=0.3, help="probability of a paused cycle per AXI channel")
    ap.add_argument("--mode", choices=MODES, default="random",
                    help="throughput: long lists, no pauses; reports codes_per_cycle")
    ap.add_argument("--latency", type=int, default=0,
                    help="cycles from a read burst's AR to its first R beat (0: cocotbext-axi's model as it is)")
    a = ap.parse_args(argv)
    p = ScanParams(m=a.m, lanes=a.lanes, lut_bits=a.lut_bits, k=a.k, id_bits=a.id_bits)
    s = run(p, a.data_bits, a.sim, seed=a.seed, pause=a.pause, mode=a.mode, latency=a.latency)
    print(json.dumps(s))
    return 0 if s["mismatches"] == 0 and s["config_ok"] else 1
