"""The emitted core passes `verilator --lint-only -Wall` with the generator waivers only (the AXI kernel:
tests/hw/test_axi_kernel.py, on the Verilog it emits anyway)."""
from __future__ import annotations

import sim.lint
from host.spec.scan_params import ScanParams
from hw.flow.verilog import TOP, emit
from sim.lint import WAIVERS, lint

PARAMS = ScanParams(m=5, lanes=2, lut_bits=9, k=3, id_bits=16, list_bits=8)


def test_core_is_lint_clean_with_few_waivers(tmp_path, monkeypatch):
    vfile, _ = emit(PARAMS, tmp_path / "core")
    assert lint(vfile, TOP) == []
    assert len([line for line in WAIVERS.read_text().splitlines() if line.startswith("lint_off")]) <= 10
    empty = tmp_path / "empty.vlt"
    empty.write_text("`verilator_config\n")
    monkeypatch.setattr(sim.lint, "WAIVERS", empty)
    assert any("PROCASSINIT" in line for line in lint(vfile, TOP)), "the waivers are not dead"
