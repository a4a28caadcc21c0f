"""Package the RTL board kernel as a Vitis RTL kernel (`.xo`): `python -m hw.flow.rtl_xo --out DIR [params]`.

Everything up to Vivado runs here: the Verilog, `kernel.xml` and `regs.tcl` (the register map for the IP
packager, from host/spec/regmap.py) are written first; then `vivado -mode batch` runs
hw/flow/vitis/package_xo.tcl (ipx::package_project + package_xo). Without Vivado on PATH the step stops with
`ToolMissing` saying what to install, and the generated inputs stay in place.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from host.spec import regmap
from host.spec.errors import AnoleError
from host.spec.scan_params import ScanParams
from hw.axi_kernel import bundles
from hw.flow.axi_verilog import DEFAULT_DATA_BITS, TOP, emit_axi

TCL = Path(__file__).resolve().parent / "vitis" / "package_xo.tcl"
DEFAULT_CLOCK_HZ = 300_000_000
"""ap_clk of the Alveo platforms' default kernel clock (FREQ_HZ on the packaged ap_clk interface)."""
VIVADO_MSG = ("Install AMD Vivado/Vitis 2023.2 or newer (the RTL kernel flow needs `vivado` for "
              "ipx::package_project and package_xo) and run 'source <Vitis>/settings64.sh'.")


class ToolMissing(AnoleError):
    """A vendor tool the step needs is not on PATH."""


def regs_tcl(clock_hz: int = DEFAULT_CLOCK_HZ) -> str:
    """Tcl variables for package_xo.tcl: kernel/top names, IP VLNV, ap_clk frequency, bundles, and
    {name offset bytes bundle} per register."""
    regs = [f"{{CTRL 0x{regmap.CTRL:02X} 4 {{}}}}", f"{{GIER 0x{regmap.GIE:02X} 4 {{}}}}",
            f"{{IP_IER 0x{regmap.IER:02X} 4 {{}}}}", f"{{IP_ISR 0x{regmap.ISR:02X} 4 {{}}}}"]
    for name, off in regmap.ARG_OFFSETS.items():
        if name in regmap.POINTER_ARGS:
            regs.append(f"{{{name} 0x{off:02X} 8 {regmap.M_AXI_BUNDLES[name]}}}")
        else:
            regs.append(f"{{{name} 0x{off:02X} 4 {{}}}}")
    vendor, library, name, version = regmap.RTL_VLNV.split(":")
    return "\n".join([f"set ANOLE_KERNEL {regmap.KERNEL_NAME}", f"set ANOLE_TOP {TOP}",
                      f"set ANOLE_VLNV {{{vendor} {library} {name} {version}}}", f"set ANOLE_FREQ_HZ {clock_hz}",
                      f"set ANOLE_ADDR_SPACE 0x{regmap.ADDR_SPACE:X}", f"set ANOLE_BUNDLES {{{' '.join(bundles())}}}",
                      "set ANOLE_REGS {", *(f"    {r}" for r in regs), "}", ""])


def prepare(params: ScanParams, out_dir: str | Path, data_bits: int = DEFAULT_DATA_BITS) -> Path:
    """Write the packaging inputs under `<out_dir>/rtl`; returns that directory."""
    rtl = Path(out_dir) / "rtl"
    emit_axi(params, rtl, data_bits)
    (rtl / "regs.tcl").write_text(regs_tcl())
    return rtl


def package_xo(params: ScanParams, out_dir: str | Path, data_bits: int = DEFAULT_DATA_BITS,
               vivado: str = "vivado") -> Path:
    """Generate the inputs, then run Vivado to write `<out_dir>/anole_scan.xo`; returns its path."""
    rtl = prepare(params, out_dir, data_bits)
    exe = shutil.which(vivado)
    if exe is None:
        raise ToolMissing(f"'{vivado}' not found on PATH: cannot package the RTL kernel. {VIVADO_MSG} "
                          f"The Verilog, kernel.xml and regs.tcl are ready in {rtl}.")
    xo = Path(out_dir).resolve() / f"{regmap.KERNEL_NAME}.xo"
    cmd = [exe, "-mode", "batch", "-nojournal", "-nolog", "-source", str(TCL),
           "-tclargs", str(rtl.resolve()), str(xo), str(Path(out_dir).resolve() / "pack")]
    proc = subprocess.run(cmd, cwd=out_dir, capture_output=True, text=True)
    if proc.returncode or not xo.exists():
        raise AnoleError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return xo
