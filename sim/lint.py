"""`verilator --lint-only -Wall` on emitted Verilog, with the generator waivers of sim/verilator_lint.vlt."""
from __future__ import annotations

import subprocess
from pathlib import Path

from sim.build import MISSING, SimulatorMissing, tool_env

WAIVERS = Path(__file__).resolve().parent / "verilator_lint.vlt"


def lint(verilog: str | Path, top: str) -> list[str]:
    """The warning and error lines Verilator reports for `verilog` (empty: lint-clean)."""
    env = tool_env("verilator")
    if not env:
        raise SimulatorMissing(MISSING["verilator"])
    exe = str(Path(env["VERILATOR_ROOT"]) / "bin" / "verilator")
    proc = subprocess.run([exe, "--lint-only", "-Wall", str(WAIVERS), str(verilog), "--top-module", top],
                          capture_output=True, text=True, env=env)
    return [line for line in proc.stderr.splitlines() if line.startswith(("%Warning", "%Error"))]
